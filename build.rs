//! Rebuild when a migration is added: `sqlx::migrate!` embeds the files, but cargo only
//! notices new ones when told to watch the directory.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
