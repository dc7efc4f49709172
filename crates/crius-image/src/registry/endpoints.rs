//! Which hosts a pull from a registry talks to, in order: its mirrors, then the registry itself
//! unless `upstream = false`.

use crius_core::image::{DEFAULT_REGISTRY, RegistryAuth};

use super::auth::Credentials;
use crate::config::Registries;

/// One host to try.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The host as named in references and config ("docker.io", "127.0.0.1:5000").
    pub host: String,
    /// The host the API is served on (Docker Hub's is not docker.io).
    pub api_host: String,
    pub scheme: &'static str,
    pub mirror: bool,
    pub credentials: Credentials,
}

impl Endpoint {
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.api_host)
    }
}

/// Endpoints for `registry`. The pull's own credentials go to the upstream only: mirrors are
/// other parties and use the credentials of their own `[registries."mirror"]` entry.
pub fn endpoints_for(registries: &Registries, registry: &str, auth: &RegistryAuth) -> (Vec<Endpoint>, bool) {
    let config = registries.get(registry).cloned().unwrap_or_default();
    let configured = |host: &str| {
        registries.get(host).map(|c| Credentials::from_parts(&c.username, &c.password, &c.auth, &c.identity_token, ""))
    };
    let mut out: Vec<Endpoint> = config
        .mirrors
        .iter()
        .map(|m| Endpoint {
            host: m.clone(),
            api_host: m.clone(),
            scheme: scheme(registries, m),
            mirror: true,
            credentials: configured(m).unwrap_or(Credentials::None),
        })
        .collect();
    if config.upstream {
        let given = Credentials::from_auth(auth);
        let credentials =
            if matches!(given, Credentials::None) { configured(registry).unwrap_or(Credentials::None) } else { given };
        let api_host =
            if registry == DEFAULT_REGISTRY { "registry-1.docker.io".to_string() } else { registry.to_string() };
        out.push(Endpoint {
            host: registry.to_string(),
            api_host,
            scheme: scheme(registries, registry),
            mirror: false,
            credentials,
        });
    }
    (out, config.upstream)
}

fn scheme(registries: &Registries, host: &str) -> &'static str {
    if registries.is_insecure(host) { "http" } else { "https" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RegistryConfig;

    fn regs(toml_text: &str) -> Registries {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn mirrors_first_then_upstream() {
        let r = regs("[\"docker.io\"]\nmirrors = [\"127.0.0.1:6000\", \"m.example:5000\"]\n");
        let auth = RegistryAuth { username: "u".into(), password: "p".into(), ..Default::default() };
        let (eps, upstream) = endpoints_for(&r, "docker.io", &auth);
        assert!(upstream);
        let hosts: Vec<_> = eps.iter().map(|e| (e.api_host.as_str(), e.scheme, e.mirror)).collect();
        assert_eq!(
            hosts,
            [
                ("127.0.0.1:6000", "http", true),
                ("m.example:5000", "https", true),
                ("registry-1.docker.io", "https", false)
            ]
        );
        assert!(matches!(eps[0].credentials, Credentials::None), "pull credentials are not sent to mirrors");
        assert!(matches!(eps[2].credentials, Credentials::Basic { .. }));
    }

    #[test]
    fn mirrors_only_has_no_upstream_endpoint() {
        let mut r = Registries::default();
        r.0.insert(
            "docker.io".into(),
            RegistryConfig { mirrors: vec!["127.0.0.1:6000".into()], upstream: false, ..Default::default() },
        );
        r.0.insert(
            "127.0.0.1:6000".into(),
            RegistryConfig { username: "m".into(), password: "pw".into(), ..Default::default() },
        );
        let (eps, upstream) = endpoints_for(&r, "docker.io", &RegistryAuth::default());
        assert!(!upstream);
        assert_eq!(eps.len(), 1);
        assert!(eps.iter().all(|e| !e.api_host.contains("docker")));
        assert!(matches!(eps[0].credentials, Credentials::Basic { .. }), "the mirror's own credentials");
    }

    #[test]
    fn unconfigured_registry_is_just_itself() {
        let (eps, _) = endpoints_for(&Registries::default(), "127.0.0.1:5000", &RegistryAuth::default());
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].base_url(), "http://127.0.0.1:5000");
        let (eps, _) = endpoints_for(&Registries::default(), "quay.io", &RegistryAuth::default());
        assert_eq!(eps[0].base_url(), "https://quay.io");
    }
}
