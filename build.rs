//! Rebuild when a migration is added (`sqlx::migrate!` embeds the files, but cargo only
//! notices new ones when told to watch the directory), and when the console's built assets
//! change (`rust-embed` embeds `web/dist`). Without built assets the binary still builds; its
//! `/admin` page then says how to build them, and so does this warning.
fn main() {
    println!("cargo:rerun-if-changed=migrations/sqlite");
    println!("cargo:rerun-if-changed=migrations/postgres");
    println!("cargo:rerun-if-changed=web/dist");
    if !std::path::Path::new("web/dist/index.html").is_file() {
        println!(
            "cargo:warning=the web console is not built (web/dist is missing): /admin will only \
             explain how to build it. Build it with `scripts/setup.sh --console` (or \
             `npm ci --prefix web && npm run build --prefix web`), then run cargo build again."
        );
    }
}
