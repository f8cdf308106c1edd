#!/usr/bin/env bash
# Builds local stand-ins for the Dockerfile's base images, for a machine that cannot reach
# Docker Hub but can reach a Debian mirror (see docs/deploy.md, "Building without Docker Hub"):
#   NODE_IMAGE  a Debian bookworm root filesystem (debootstrap, minbase) plus this machine's
#               Node.js and npm;
#   RUST_IMAGE  the same root filesystem plus gcc and libc6-dev from Debian, and this machine's
#               Rust toolchain (the one `rustc` runs, without rustup).
#   POSTGRES    (--postgres, or alone with --only-postgres) Debian's PostgreSQL server on the
#               node stand-in, with an entry point that reads POSTGRES_USER, POSTGRES_PASSWORD
#               and POSTGRES_DB as the official image does (for docker-compose.yml).
# Then: docker build --network host --build-arg RUST_IMAGE=ccgw-base/rust:bookworm \
#         --build-arg NODE_IMAGE=ccgw-base/node:20-bookworm -t ccgw .
#
# The Debian mirror is read from this machine's apt configuration (/etc/apt/sources.list and
# /etc/apt/sources.list.d/), or given as DEBIAN_MIRROR. The root filesystem gets the same apt
# sources (so images built on it get security updates) and the path excludes of Debian's slim
# images (no docs, man pages or locales). Needs root, debootstrap and a running Docker daemon.
#
# Environment: CCGW_NODE_IMAGE / CCGW_RUST_IMAGE / CCGW_POSTGRES_IMAGE (the tags),
# CCGW_BASE_WORKDIR (where the root filesystems are made; removed afterwards unless
# KEEP_ROOTFS=1), DEBIAN_MIRROR.
set -euo pipefail

NODE_TAG="${CCGW_NODE_IMAGE:-ccgw-base/node:20-bookworm}"
RUST_TAG="${CCGW_RUST_IMAGE:-ccgw-base/rust:bookworm}"
POSTGRES_TAG="${CCGW_POSTGRES_IMAGE:-ccgw-base/postgres:bookworm}"
POSTGRES=0
ONLY_POSTGRES=0
for arg in "$@"; do
    case "$arg" in
        --postgres) POSTGRES=1 ;;
        --only-postgres) POSTGRES=1 ONLY_POSTGRES=1 ;;
        *) echo "usage: $0 [--postgres | --only-postgres]" >&2; exit 2 ;;
    esac
done
SUITE=bookworm
# The Claude Code CLI needs Node.js 18 or later; the official image this stands in for has 20.
NODE_MIN_MAJOR=18
PATH_DEFAULT=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "base-images: $*" >&2; exit 1; }
log() { echo "base-images: $*" >&2; }

docker info >/dev/null 2>&1 || die "no Docker daemon reachable"

# POSTGRES: the server of Debian's postgresql package, set up on first start as the official
# image sets itself up.
build_postgres() {
    local ctx
    docker image inspect "$NODE_TAG" >/dev/null 2>&1 || die "$NODE_TAG is missing: run without --only-postgres"
    ctx="$(mktemp -d)"
    cat > "$ctx/entrypoint.sh" <<'ENTRYPOINT'
#!/bin/sh
# First start on an empty data dir: initdb with POSTGRES_USER and POSTGRES_PASSWORD, then
# POSTGRES_DB; then the server, as the postgres user, listening on every address.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}" "${POSTGRES_USER:=postgres}"
bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    [ -n "${POSTGRES_PASSWORD:-}" ] || { echo "POSTGRES_PASSWORD is not set" >&2; exit 1; }
    pw="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pw"
    chown postgres "$pw"
    as_pg "$bin/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pw" \
        --auth-local=trust --auth-host=scram-sha-256
    rm -f "$pw"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    if [ -n "${POSTGRES_DB:-}" ] && [ "$POSTGRES_DB" != postgres ]; then
        as_pg "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses=''" -w start
        as_pg "$bin/createdb" -U "$POSTGRES_USER" "$POSTGRES_DB"
        as_pg "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop
    fi
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups \
    "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' "$@"
ENTRYPOINT
    chmod +x "$ctx/entrypoint.sh"
    cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM $NODE_TAG
RUN apt-get update && apt-get install -y --no-install-recommends postgresql \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
COPY entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PGDATA=/var/lib/postgresql/data
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
DOCKERFILE
    DOCKER_BUILDKIT=0 docker build -q --network host -t "$POSTGRES_TAG" "$ctx" >/dev/null
    rm -rf "$ctx"
    log "built $POSTGRES_TAG ($(docker image inspect --format '{{.Size}}' "$POSTGRES_TAG") bytes)"
}
if [ "$ONLY_POSTGRES" = 1 ]; then
    build_postgres
    exit 0
fi

[ "$(id -u)" = 0 ] || die "needs root (debootstrap and chroot)"
command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"

# The first Debian mirror apt uses for "$SUITE main", from one-line or deb822 sources.
apt_mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v suite="$SUITE" '$1 == "deb" {
                i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { print $i; exit }
            }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v suite="$SUITE" 'BEGIN { RS = ""; FS = "\n" } {
                types = ""; uris = ""; suites = ""
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^Types:/) types = $i
                    if ($i ~ /^URIs:/) uris = $i
                    if ($i ~ /^Suites:/) suites = $i
                }
                if (types ~ /[ \t]deb([ \t]|$)/ && (" " suites " ") ~ ("[ \t]" suite "[ \t]")) {
                    split(uris, u, /[ \t]+/); print u[2]; exit
                }
            }' "$f"
    done
}

MIRROR="${DEBIAN_MIRROR:-$(apt_mirror | head -n 1)}"
[ -n "$MIRROR" ] || die "no Debian $SUITE mirror in /etc/apt/sources.list*; set DEBIAN_MIRROR"

NODE_BIN="$(command -v node)" || die "node is missing"
NODE_MAJOR="$("$NODE_BIN" -p 'process.versions.node.split(".")[0]')"
[ "$NODE_MAJOR" -ge "$NODE_MIN_MAJOR" ] || die "node $("$NODE_BIN" --version) is older than $NODE_MIN_MAJOR"
NPM_DIR="$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)"
[ -f "$NPM_DIR/package.json" ] || die "cannot find npm's package next to $(command -v npm)"
SYSROOT="$(rustc --print sysroot)" || die "rustc is missing"
[ -x "$SYSROOT/bin/cargo" ] || die "no cargo in the toolchain at $SYSROOT"

WORK="${CCGW_BASE_WORKDIR:-$(mktemp -d /var/tmp/ccgw-base.XXXXXX)}"
ROOTFS="$WORK/rootfs"
cleanup() {
    if mountpoint -q "$ROOTFS/proc" 2>/dev/null; then umount "$ROOTFS/proc"; fi
    if [ "${KEEP_ROOTFS:-0}" != 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

in_root() { chroot "$ROOTFS" /usr/bin/env -i PATH="$PATH_DEFAULT" DEBIAN_FRONTEND=noninteractive "$@"; }

# A root filesystem that is the root filesystem of an image: no apt lists or caches, no host
# resolv.conf (Docker provides one), no /proc mount left behind.
import_rootfs() {
    local tag="$1"; shift
    if mountpoint -q "$ROOTFS/proc"; then umount "$ROOTFS/proc"; fi
    rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb
    : > "$ROOTFS/etc/resolv.conf"
    tar --numeric-owner -C "$ROOTFS" -c . | docker import "$@" - "$tag" >/dev/null
    log "imported $tag ($(docker image inspect --format '{{.Size}}' "$tag") bytes)"
}

log "debootstrap $SUITE (minbase) into $ROOTFS"
debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >&2

# Debian's slim images leave out docs, man pages and locales; so does every package added later.
cat > "$ROOTFS/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/*

# The same apt sources as this machine (for bookworm-updates and security), when they name the mirror.
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    if [ -f "$f" ] && grep -qF "$MIRROR" "$f"; then
        cp "$f" "$ROOTFS/etc/apt/sources.list.d/"
        : > "$ROOTFS/etc/apt/sources.list"
    fi
done
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
mount -t proc proc "$ROOTFS/proc"
in_root apt-get update -q >&2
in_root apt-get upgrade -y -q >&2
in_root apt-get install -y -q --no-install-recommends ca-certificates >&2
in_root apt-get clean

# Where this machine trusts certificate authorities beyond Debian's (a TLS-inspecting proxy),
# the builds on these images must too: for apt, cargo, npm (NODE_EXTRA_CA_CERTS) and the CLI.
# The images then carry those authorities, and so does an image built on them: say so.
extra_cas() {
    awk 'FNR == 1 { file++ }
        /-----BEGIN CERTIFICATE-----/ { pem = "" }
        { pem = pem $0 "\n" }
        /-----END CERTIFICATE-----/ { if (file == 1) known[pem] = 1; else if (!(pem in known)) printf "%s", pem }' \
        "$ROOTFS/etc/ssl/certs/ca-certificates.crt" "$HOST_CA_BUNDLE"
}
HOST_CA_BUNDLE="${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
NODE_CA_ENV=()
if [ -f "$HOST_CA_BUNDLE" ] && [ -n "$(extra_cas)" ]; then
    mkdir -p "$ROOTFS/usr/local/share/ca-certificates"
    extra_cas | awk '/-----BEGIN CERTIFICATE-----/ { n++ } { print > (dir "/host-" n ".crt") }' \
        dir="$ROOTFS/usr/local/share/ca-certificates"
    in_root update-ca-certificates >&2
    NODE_CA_ENV=(--change "ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt")
    log "WARNING: the images trust $(ls "$ROOTFS/usr/local/share/ca-certificates" | wc -l) certificate authorities of this machine beyond Debian's"
fi
umount "$ROOTFS/proc"

# NODE_IMAGE: Node.js and npm as the official image has them (/usr/local/bin, /usr/local/lib).
log "node $("$NODE_BIN" --version), npm from $NPM_DIR"
cp -a "$ROOTFS" "$WORK/node-rootfs"
install -m 0755 "$NODE_BIN" "$WORK/node-rootfs/usr/local/bin/node"
mkdir -p "$WORK/node-rootfs/usr/local/lib/node_modules"
cp -a "$NPM_DIR" "$WORK/node-rootfs/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$WORK/node-rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$WORK/node-rootfs/usr/local/bin/npx"
(
    ROOTFS="$WORK/node-rootfs"
    in_root node -e 'process.exit(0)' || die "node does not run in the root filesystem"
    import_rootfs "$NODE_TAG" --change "ENV PATH=$PATH_DEFAULT" "${NODE_CA_ENV[@]}" \
        --change "ENV NODE_VERSION=$("$NODE_BIN" -p process.versions.node)" --change 'CMD ["node"]'
)
rm -rf "$WORK/node-rootfs"

# RUST_IMAGE: a C toolchain for the build scripts (ring, libsqlite3-sys), and Rust.
log "rust from $SYSROOT"
mount -t proc proc "$ROOTFS/proc"
in_root apt-get install -y -q --no-install-recommends gcc libc6-dev >&2
in_root apt-get clean
mkdir -p "$ROOTFS/usr/local/rust" "$ROOTFS/usr/local/cargo"
tar -C "$SYSROOT" --exclude=./share/doc --exclude=./share/man -c . | tar -C "$ROOTFS/usr/local/rust" -x
in_root /usr/local/rust/bin/cargo --version >&2 || die "cargo does not run in the root filesystem"
import_rootfs "$RUST_TAG" \
    --change "ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:$PATH_DEFAULT" \
    --change "ENV CARGO_HOME=/usr/local/cargo" "${NODE_CA_ENV[@]}" --change 'CMD ["bash"]'

if [ "$POSTGRES" = 1 ]; then build_postgres; fi
log "done: --build-arg NODE_IMAGE=$NODE_TAG --build-arg RUST_IMAGE=$RUST_TAG"
