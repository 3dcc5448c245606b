//! Token configuration from the environment: `COST_CONTROL_ADMIN_TOKEN` and
//! `COST_CONTROL_GATEWAY_TOKEN`, or `..._FILE` naming a file that holds the
//! token (trailing newline ignored). Token values are never logged.

use crate::auth::Tokens;

pub const ADMIN_ENV: &str = "COST_CONTROL_ADMIN_TOKEN";
pub const GATEWAY_ENV: &str = "COST_CONTROL_GATEWAY_TOKEN";

/// Reads one token from `NAME` or `NAME_FILE` through `get` (the env).
pub fn token_from(
    get: &dyn Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<String>, String> {
    if let Some(v) = get(name).filter(|v| !v.is_empty()) {
        return Ok(Some(v));
    }
    let file_var = format!("{name}_FILE");
    match get(&file_var).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(path) => {
            let raw = std::fs::read_to_string(&path)
                .map_err(|e| format!("{file_var}: cannot read {path}: {e}"))?;
            let v = raw.trim_end_matches(['\n', '\r']).to_owned();
            if v.is_empty() {
                return Err(format!("{file_var}: {path} is empty"));
            }
            Ok(Some(v))
        }
    }
}

/// The server's tokens. Without both configured the server refuses to start
/// unless `dev` (then the fixed dev tokens are used; the caller warns).
pub fn server_tokens(get: &dyn Fn(&str) -> Option<String>, dev: bool) -> Result<Tokens, String> {
    let admin = token_from(get, ADMIN_ENV)?;
    let gateway = token_from(get, GATEWAY_ENV)?;
    match (admin, gateway) {
        (Some(a), Some(g)) => Tokens::new(&a, &g),
        _ if dev => Ok(Tokens::dev()),
        _ => Err(format!(
            "no tokens: set {ADMIN_ENV} and {GATEWAY_ENV} (or their _FILE variants), \
             or pass --dev-tokens for local development"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    #[test]
    fn tokens_from_env_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin");
        std::fs::write(&file, "from-file\n").unwrap();
        let path = file.to_string_lossy().into_owned();
        let env = move |k: &str| match k {
            "COST_CONTROL_ADMIN_TOKEN_FILE" => Some(path.clone()),
            "COST_CONTROL_GATEWAY_TOKEN" => Some("gw".to_owned()),
            _ => None,
        };
        let t = server_tokens(&env, false).unwrap();
        assert_eq!(t.role_of("from-file"), Some(Role::Admin));
        assert_eq!(t.role_of("gw"), Some(Role::Gateway));
        let none = |_: &str| None;
        assert!(server_tokens(&none, false)
            .unwrap_err()
            .contains("--dev-tokens"));
        let dev = server_tokens(&none, true).unwrap();
        assert_eq!(dev.role_of("admin-dev-token"), Some(Role::Admin));
    }
}
