//! Native API workspace endpoints: files (upload, list, download, delete) and memory (the
//! workspace's CLAUDE.md). Extract, call the domain, render or map the error.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::Deserialize;

use crate::domain::files::Upload;
use crate::http::error::{ApiError, NativeError};
use crate::http::AppState;

type Result<T> = std::result::Result<T, NativeError>;

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, ApiError> {
    crate::http::body::parse(bytes, &crate::http::body::NATIVE)
}

/// One file: its path in the workspace and its bytes in base64.
#[derive(Deserialize, utoipa::ToSchema)]
struct JsonFile {
    path: String,
    content_base64: String,
}

/// `{path, content_base64, overwrite?}` or `{files: [{path, content_base64}], overwrite?}`.
#[derive(Deserialize, utoipa::ToSchema)]
struct JsonUpload {
    #[serde(default)]
    #[schema(value_type = String)]
    path: Option<String>,
    #[serde(default)]
    #[schema(value_type = String)]
    content_base64: Option<String>,
    #[serde(default)]
    files: Vec<JsonFile>,
    #[serde(default)]
    overwrite: bool,
}

fn decode(b64: &str, at: &str) -> std::result::Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| ApiError::bad_request(at, format!("not valid base64: {e}")))
}

fn truthy(v: &str) -> bool {
    matches!(v.trim(), "true" | "1" | "yes")
}

/// Multipart (file parts named by their relative path, an `overwrite` field) or JSON.
#[utoipa::path(
    post, path = "/api/sessions/{id}/files/upload", tag = "native", operation_id = "files_upload",
    params(("id" = String, Path, description = "The session's id"), OverwriteQuery),
    request_body(
        description = "Multipart: file parts named by their relative path, an `overwrite` field; \
            or JSON: `{path, content_base64}` or `{files: [{path, content_base64}]}`",
        content(("multipart/form-data"), (JsonUpload = "application/json"))
    ),
    responses((status = 201, description = "The files written", body = super::types::Uploaded), (status = 413, description = "Over the upload limit"))
)]
pub async fn upload(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<OverwriteQuery>,
    req: Request,
) -> Result<Response> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let mut overwrite = q.overwrite.as_deref().is_some_and(truthy);
    let mut uploads = Vec::new();
    if multipart {
        let mut form = Multipart::from_request(req, &app)
            .await
            .map_err(|e| ApiError::bad_request("", format!("not a valid multipart body: {e}")))?;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| ApiError::bad_request("", format!("not a valid multipart body: {e}")))?
        {
            let name = field.name().unwrap_or_default().to_string();
            let file_name = field.file_name().map(str::to_string);
            let bytes = field
                .bytes()
                .await
                .map_err(|e| ApiError::bad_request(&name, format!("reading the part: {e}")))?;
            match file_name {
                Some(path) => uploads.push(Upload {
                    path,
                    bytes: bytes.to_vec(),
                }),
                None if name == "overwrite" => {
                    overwrite |= truthy(&String::from_utf8_lossy(&bytes))
                }
                None => {}
            }
        }
    } else {
        let bytes = Bytes::from_request(req, &app)
            .await
            .map_err(|e| ApiError::bad_request("", e.to_string()))?;
        let u: JsonUpload = body(&bytes)?;
        overwrite |= u.overwrite;
        match (u.path, u.content_base64) {
            (Some(path), Some(b64)) => uploads.push(Upload {
                bytes: decode(&b64, "content_base64")?,
                path,
            }),
            (Some(_), None) => {
                return Err(
                    ApiError::bad_request("content_base64", "content_base64 is required").into(),
                )
            }
            (None, Some(_)) => return Err(ApiError::bad_request("path", "path is required").into()),
            (None, None) => {}
        }
        for (i, f) in u.files.into_iter().enumerate() {
            uploads.push(Upload {
                bytes: decode(&f.content_base64, &format!("files[{i}].content_base64"))?,
                path: f.path,
            });
        }
    }
    let written = app
        .conversations
        .upload_files(&id, uploads, overwrite)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(super::types::Uploaded { data: written }),
    )
        .into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OverwriteQuery {
    overwrite: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    path: Option<String>,
    recursive: Option<String>,
}

#[utoipa::path(
    get, path = "/api/sessions/{id}/files", tag = "native", operation_id = "files_list",
    params(("id" = String, Path, description = "The session's id"), ListQuery),
    responses((status = 200, description = "The directory's entries", body = super::types::FileList))
)]
pub async fn list(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    let recursive = q.recursive.as_deref().is_some_and(truthy);
    let (data, truncated) = app
        .conversations
        .list_files(&id, q.path.as_deref(), recursive)
        .await?;
    Ok(Json(super::types::FileList { data, truncated }).into_response())
}

#[utoipa::path(
    get, path = "/api/sessions/{id}/files/{path}", tag = "native", operation_id = "files_download",
    params(("id" = String, Path, description = "The session's id"), ("path" = String, Path, description = "A file path inside the session's workspace")),
    responses((status = 200, description = "The file's bytes, with its MIME type as `content-type`", content_type = "application/octet-stream"))
)]
pub async fn download(
    State(app): State<AppState>,
    Path((id, path)): Path<(String, String)>,
) -> Result<Response> {
    let (bytes, mime) = app.conversations.read_file(&id, &path).await?;
    Ok(([(header::CONTENT_TYPE, mime)], bytes).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    recursive: Option<String>,
}

#[utoipa::path(
    delete, path = "/api/sessions/{id}/files/{path}", tag = "native", operation_id = "files_delete",
    params(("id" = String, Path, description = "The session's id"), ("path" = String, Path, description = "A file path inside the session's workspace"), DeleteQuery),
    responses((status = 204, description = "Done"))
)]
pub async fn delete(
    State(app): State<AppState>,
    Path((id, path)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> Result<StatusCode> {
    let recursive = q.recursive.as_deref().is_some_and(truthy);
    app.conversations.delete_file(&id, &path, recursive).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{content}`: the text of CLAUDE.md.
#[derive(Deserialize, utoipa::ToSchema)]
struct MemoryBody {
    /// The text of CLAUDE.md.
    #[schema(required = true, value_type = String)]
    content: Option<String>,
}

/// The body's `content` (a missing one is named, not reported as the whole body).
fn memory_text(bytes: &[u8]) -> std::result::Result<String, ApiError> {
    let m: MemoryBody = body(bytes)?;
    m.content.ok_or_else(|| {
        ApiError::bad_request("content", "content is required (the text of CLAUDE.md)")
    })
}

#[utoipa::path(
    get, path = "/api/sessions/{id}/memory", tag = "native", operation_id = "files_memory",
    params(("id" = String, Path, description = "The session's id")),
    responses((status = 200, description = "The workspace's CLAUDE.md", body = crate::domain::workspace::MemoryView))
)]
pub async fn memory(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    Ok(Json(app.conversations.memory(&id).await?).into_response())
}

#[utoipa::path(
    put, path = "/api/sessions/{id}/memory", tag = "native", operation_id = "files_put_memory",
    params(("id" = String, Path, description = "The session's id")),
    request_body = MemoryBody,
    responses((status = 200, description = "The workspace's CLAUDE.md, written", body = crate::domain::workspace::MemoryView))
)]
pub async fn put_memory(
    State(app): State<AppState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response> {
    let text = memory_text(&bytes)?;
    Ok(Json(app.conversations.set_memory(&id, &text, false).await?).into_response())
}

#[utoipa::path(
    post, path = "/api/sessions/{id}/memory", tag = "native", operation_id = "files_append_memory",
    params(("id" = String, Path, description = "The session's id")),
    request_body = MemoryBody,
    responses((status = 200, description = "The workspace's CLAUDE.md, added to", body = crate::domain::workspace::MemoryView))
)]
pub async fn append_memory(
    State(app): State<AppState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response> {
    let text = memory_text(&bytes)?;
    Ok(Json(app.conversations.set_memory(&id, &text, true).await?).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    since: Option<String>,
}

/// The files the session created, modified or deleted, each with its unified diff.
#[utoipa::path(
    get, path = "/api/sessions/{id}/changes", tag = "native", operation_id = "files_changes",
    params(("id" = String, Path, description = "The session's id"), ChangesQuery),
    responses((status = 200, description = "The files the session changed, each with its diff", body = super::types::ChangeList))
)]
pub async fn changes(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ChangesQuery>,
) -> Result<Response> {
    let since = match q.since.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(s.parse::<u64>().map_err(|_| {
            ApiError::bad_request("since", "since must be a history seq (a number)")
        })?),
    };
    let (data, base) = app.conversations.changes(&id, since).await?;
    Ok(Json(super::types::ChangeList {
        data,
        since_seq: base,
    })
    .into_response())
}

/// `{to_seq, conversation?}`.
#[derive(Deserialize, utoipa::ToSchema)]
struct RewindBody {
    /// A history seq: the workspace goes back to how it was then.
    #[schema(required = true, value_type = u64)]
    to_seq: Option<u64>,
    /// Also continue the conversation from there, in a new session.
    #[serde(default)]
    conversation: bool,
}

#[utoipa::path(
    post, path = "/api/sessions/{id}/rewind", tag = "native", operation_id = "files_rewind",
    params(("id" = String, Path, description = "The session's id")),
    request_body = RewindBody,
    responses(
        (status = 200, description = "The files put back", body = crate::domain::workspace::Rewound),
        (status = 201, description = "The files put back, and `session`: the new session the conversation continues in", body = crate::domain::workspace::Rewound)
    )
)]
pub async fn rewind(
    State(app): State<AppState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response> {
    let r: RewindBody = body(&bytes)?;
    let to_seq = r
        .to_seq
        .ok_or_else(|| ApiError::bad_request("to_seq", "to_seq is required (a history seq)"))?;
    let out = app
        .conversations
        .rewind(&id, to_seq, r.conversation)
        .await?;
    let status = if out.session.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(out)).into_response())
}
