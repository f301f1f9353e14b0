//! The `--json` documents (docs/json.md): each command that reports prints
//! one JSON object whose first field is `"schema": N`, followed by the
//! fields of the library's report type (its `Serialize`). A later change
//! that removes or retypes a field raises N; adding a field does not.

use crate::error::CliError;
use serde::Serialize;

/// The schema version of the documents this binary prints.
pub const SCHEMA: u32 = 1;

/// `body`'s fields behind `"schema"`.
#[derive(Serialize)]
struct Document<'a, T: Serialize + ?Sized> {
    schema: u32,
    #[serde(flatten)]
    body: &'a T,
}

/// The document of `body` (a struct or map: its fields follow
/// `"schema"`), pretty-printed.
pub fn to_string<T: Serialize + ?Sized>(body: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(&Document {
        schema: SCHEMA,
        body,
    })
    .map_err(|e| CliError::failed(format!("cannot print JSON: {e}")))
}

/// The document of `body` on one line (for a summary after JSON progress
/// lines).
pub fn to_line<T: Serialize + ?Sized>(body: &T) -> Result<String, CliError> {
    serde_json::to_string(&Document {
        schema: SCHEMA,
        body,
    })
    .map_err(|e| CliError::failed(format!("cannot print JSON: {e}")))
}

/// Prints [`to_string`]`(body)` on stdout.
pub fn print<T: Serialize + ?Sized>(body: &T) -> Result<(), CliError> {
    println!("{}", to_string(body)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Report {
        zeta: u32,
        alpha: &'static str,
    }

    #[test]
    fn the_schema_comes_first_then_the_report_fields_in_order() {
        let text = to_line(&Report {
            zeta: 2,
            alpha: "a",
        })
        .unwrap();
        assert_eq!(text, r#"{"schema":1,"zeta":2,"alpha":"a"}"#);
        let v: serde_json::Value =
            serde_json::from_str(&to_string(&serde_json::json!({"runs": []})).unwrap()).unwrap();
        assert_eq!(v, serde_json::json!({"schema": 1, "runs": []}));
    }

    #[test]
    fn a_list_is_not_a_document() {
        assert!(to_string(&[1, 2]).is_err());
    }
}
