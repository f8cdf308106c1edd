//! Which store the `database_url` setting names, and opening it: `sqlite://PATH` (the default,
//! a file in the data dir) or `postgres://…` / `postgresql://…`.
//!
//! Owns: reading the URL's scheme, and the URL as it may be shown (its password replaced).
//! Must not: log or return a password: every message built here uses [`redact_url`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Durability, PgStore, SqliteStore, Store, StoreError};

/// The store a `database_url` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A Postgres server's database (the URL as given, password included).
    Postgres(String),
}

impl DatabaseUrl {
    /// The setting's value; empty means `sqlite://<data_dir>/ccgw.db`. A relative SQLite path
    /// is relative to the data dir. Anything but the two schemes is an error naming the
    /// setting.
    pub fn parse(setting: &str, data_dir: &Path) -> Result<DatabaseUrl, String> {
        let v = setting.trim();
        if v.is_empty() {
            return Ok(DatabaseUrl::Sqlite(data_dir.join("ccgw.db")));
        }
        if let Some(path) = v
            .strip_prefix("sqlite://")
            .or_else(|| v.strip_prefix("sqlite:"))
        {
            // `sqlite:///abs/path` and `sqlite://rel/path` both work.
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err("database_url: a sqlite:// URL needs a file path".into());
            }
            let path = Path::new(path);
            return Ok(DatabaseUrl::Sqlite(if path.is_absolute() {
                path.to_path_buf()
            } else {
                data_dir.join(path)
            }));
        }
        if v.starts_with("postgres://") || v.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(v.to_string()));
        }
        Err(format!(
            "database_url must start with sqlite:// or postgres:// (got {})",
            redact_url(v)
        ))
    }

    /// What a log line or an error may show: the Postgres URL without its password.
    pub fn shown(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => redact_url(url),
        }
    }
}

/// `url` with the password of its user-info part replaced by `***` (and nothing else
/// changed). A password given as a `password=` query parameter is replaced too.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                let start = rest_start + colon + 1;
                out.replace_range(start..rest_start + at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

/// Opens the store `url` names, running its migrations. SQLite's `durability` is its
/// `synchronous` setting; Postgres's is the server's own.
pub async fn open(url: &DatabaseUrl, durability: Durability) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url {
        DatabaseUrl::Sqlite(path) => Arc::new(SqliteStore::open_with(path, durability).await?),
        DatabaseUrl::Postgres(u) => Arc::new(PgStore::open(u).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_data_dirs_sqlite_file() {
        let d = Path::new("/srv/data");
        assert_eq!(
            DatabaseUrl::parse("", d),
            Ok(DatabaseUrl::Sqlite("/srv/data/ccgw.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/x.db", d),
            Ok(DatabaseUrl::Sqlite("/var/lib/x.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://other.db", d),
            Ok(DatabaseUrl::Sqlite("/srv/data/other.db".into()))
        );
        assert!(DatabaseUrl::parse("sqlite://", d).is_err());
    }

    #[test]
    fn postgres_urls_are_kept_and_anything_else_is_refused_by_name() {
        let d = Path::new("/d");
        for u in ["postgres://u:p@h/db", "postgresql://h:5432/db"] {
            assert_eq!(
                DatabaseUrl::parse(u, d),
                Ok(DatabaseUrl::Postgres(u.into()))
            );
        }
        let err = DatabaseUrl::parse("mysql://root:hunter2@h/db", d).unwrap_err();
        assert!(err.contains("database_url"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("postgres://ccgw:s3cr%40t@db:5432/ccgw?sslmode=disable"),
            "postgres://ccgw:***@db:5432/ccgw?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://ccgw@db/ccgw?password=s3cret&x=1"),
            "postgres://ccgw@db/ccgw?password=***&x=1"
        );
        assert_eq!(redact_url("postgres://db/ccgw"), "postgres://db/ccgw");
        let shown = DatabaseUrl::Postgres("postgresql://a:b@c/d".into()).shown();
        assert_eq!(shown, "postgresql://a:***@c/d");
    }
}
