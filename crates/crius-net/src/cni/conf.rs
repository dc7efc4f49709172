//! Network configs: parsing a .conflist (or a single-plugin .conf/.json) into a plugin chain, and
//! picking the one to use from the config directories.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::version::CniVersion;
use crate::error::NetError;

/// One plugin of a chain: its type (the executable's name), the capabilities it asks for, and
/// its config object as written (passed on to it with name, cniVersion and runtime fields).
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConf {
    pub plugin_type: String,
    pub capabilities: BTreeSet<String>,
    pub raw: Map<String, Value>,
}

/// A network: a named chain of plugins at one CNI version.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkList {
    pub name: String,
    pub version: CniVersion,
    /// The version string as given (plugins are handed it back verbatim, normalised to x.y.z).
    pub version_str: String,
    pub disable_check: bool,
    pub plugins: Vec<PluginConf>,
    /// The whole config as read, kept in the result cache so DEL uses exactly it.
    pub raw: Value,
}

impl NetworkList {
    /// Parses either shape, whatever the file's extension: an object with `plugins` is a list,
    /// one with `type` is a single plugin (wrapped as a list of one, as libcni does).
    pub fn parse(raw: Value) -> Result<NetworkList, String> {
        let obj = raw.as_object().ok_or("not a JSON object")?;
        let name = str_field(obj, "name")?.ok_or("no \"name\"")?.to_string();
        if name.is_empty() {
            return Err("\"name\" is empty".into());
        }
        let version = pick_version(obj)?;
        let disable_check = match obj.get("disableCheck") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            // 1.1 allows the string forms too.
            Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
            Some(_) => return Err("\"disableCheck\" is not a boolean".into()),
        };
        let plugins = match obj.get("plugins") {
            Some(Value::Array(list)) => {
                if list.is_empty() {
                    return Err("\"plugins\" is empty".into());
                }
                list.iter().enumerate().map(|(i, p)| plugin(p).map_err(|e| format!("plugin {i}: {e}"))).collect()
            }
            Some(_) => Err("\"plugins\" is not a list".to_string()),
            None if obj.contains_key("type") => plugin(&raw).map(|p| vec![p]),
            None => Err("neither \"plugins\" nor \"type\"".to_string()),
        }?;
        Ok(NetworkList { name, version_str: version.to_string(), version, disable_check, plugins, raw })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<NetworkList, String> {
        let raw: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        Self::parse(raw)
    }

    pub fn plugin_types(&self) -> impl Iterator<Item = &str> {
        self.plugins.iter().map(|p| p.plugin_type.as_str())
    }
}

fn str_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("\"{key}\" is not a string")),
    }
}

/// `cniVersions` (1.1: every version the file is valid for) wins over `cniVersion`: the newest
/// one crius reads.
fn pick_version(obj: &Map<String, Value>) -> Result<CniVersion, String> {
    if let Some(Value::Array(list)) = obj.get("cniVersions") {
        let best =
            list.iter().filter_map(Value::as_str).filter_map(CniVersion::parse).filter(|v| v.is_supported()).max();
        if let Some(v) = best {
            return Ok(v);
        }
    }
    let given = str_field(obj, "cniVersion")?.ok_or("no \"cniVersion\"")?;
    let version = CniVersion::parse(given).ok_or_else(|| format!("cniVersion {given:?} is not a version"))?;
    if !version.is_supported() {
        return Err(format!(
            "cniVersion {given} is not supported (crius speaks {} to {})",
            CniVersion::V0_3_0,
            CniVersion::NEWEST
        ));
    }
    Ok(version)
}

fn plugin(value: &Value) -> Result<PluginConf, String> {
    let raw = value.as_object().ok_or("not a JSON object")?.clone();
    let plugin_type = str_field(&raw, "type")?.ok_or("no \"type\"")?.to_string();
    // The type is run as an executable found in the bin dirs: no paths.
    if plugin_type.is_empty() || plugin_type.contains('/') || plugin_type == "." || plugin_type == ".." {
        return Err(format!("\"type\" {plugin_type:?} is not a plugin name"));
    }
    let capabilities = match raw.get("capabilities") {
        Some(Value::Object(caps)) => {
            caps.iter().filter(|(_, on)| on.as_bool() == Some(true)).map(|(k, _)| k.clone()).collect()
        }
        _ => BTreeSet::new(),
    };
    Ok(PluginConf { plugin_type, capabilities, raw })
}

/// Config files of a directory, lexically ordered (libcni's order).
pub fn config_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("conflist" | "conf" | "json")))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// The outcome of looking for a network: the one found, and why others were passed over.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub found: Option<(PathBuf, NetworkList)>,
    pub skipped: Vec<String>,
}

/// The first usable network in `dirs` (each in lexical order), or the one named `name`.
pub fn select(dirs: &[PathBuf], name: &str) -> Selection {
    let mut selection = Selection::default();
    for dir in dirs {
        for path in config_files(dir) {
            let parsed = std::fs::read(&path).map_err(|e| e.to_string()).and_then(|b| NetworkList::from_bytes(&b));
            match parsed {
                Ok(list) if name.is_empty() || list.name == name => {
                    selection.found = Some((path, list));
                    return selection;
                }
                Ok(list) => {
                    selection.skipped.push(format!("{}: network {:?} is not {name:?}", path.display(), list.name))
                }
                Err(e) => selection.skipped.push(format!("{}: {e}", path.display())),
            }
        }
    }
    selection
}

impl Selection {
    /// The error to report when nothing was found.
    pub fn not_found(&self, dirs: &[PathBuf], name: &str) -> NetError {
        let dirs = dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ");
        let mut detail = String::new();
        if !name.is_empty() {
            detail.push_str(&format!(" named {name:?}"));
        }
        if !self.skipped.is_empty() {
            detail.push_str(&format!(" (skipped: {})", self.skipped.join("; ")));
        }
        NetError::NoNetworkConfig { dirs, detail }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn conflist_with_capabilities() {
        let raw = json!({
            "cniVersion": "1.0.0", "name": "net", "disableCheck": true,
            "plugins": [
                {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local"}},
                {"type": "portmap", "capabilities": {"portMappings": true, "other": false}}
            ]
        });
        let list = NetworkList::parse(raw).unwrap();
        assert_eq!(list.name, "net");
        assert_eq!(list.version, CniVersion::V1_0_0);
        assert!(list.disable_check);
        assert_eq!(list.plugin_types().collect::<Vec<_>>(), ["bridge", "portmap"]);
        assert!(list.plugins[0].capabilities.is_empty());
        assert_eq!(list.plugins[1].capabilities.iter().collect::<Vec<_>>(), ["portMappings"]);
        assert_eq!(list.plugins[0].raw["bridge"], "cni0");
    }

    #[test]
    fn single_plugin_conf_becomes_a_list_of_one() {
        let list = NetworkList::parse(json!({"cniVersion": "0.3.1", "name": "n", "type": "ptp"})).unwrap();
        assert_eq!(list.version_str, "0.3.1");
        assert_eq!(list.plugins.len(), 1);
        assert_eq!(list.plugins[0].plugin_type, "ptp");
        assert!(!list.disable_check);
    }

    #[test]
    fn cni_versions_picks_the_newest_supported() {
        let raw = json!({"cniVersion": "0.4.0", "cniVersions": ["0.4.0", "1.0.0", "9.0.0"], "name": "n", "plugins": [{"type": "x"}]});
        assert_eq!(NetworkList::parse(raw).unwrap().version, CniVersion::V1_0_0);
    }

    #[test]
    fn refusals_say_why() {
        let cases = [
            (json!({"name": "n", "plugins": [{"type": "x"}]}), "cniVersion"),
            (json!({"cniVersion": "0.2.0", "name": "n", "plugins": [{"type": "x"}]}), "not supported"),
            (json!({"cniVersion": "1.0.0", "plugins": [{"type": "x"}]}), "name"),
            (json!({"cniVersion": "1.0.0", "name": "n", "plugins": []}), "empty"),
            (json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"bridge": "x"}]}), "plugin 0: no \"type\""),
            (json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "../x"}]}), "not a plugin name"),
            (json!({"cniVersion": "1.0.0", "name": "n"}), "neither"),
            (json!([1]), "object"),
        ];
        for (raw, want) in cases {
            let err = NetworkList::parse(raw.clone()).unwrap_err();
            assert!(err.contains(want), "{raw}: {err}");
        }
    }

    #[test]
    fn selection_is_lexical_skips_bad_files_and_honours_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &str| std::fs::write(dir.path().join(name), body).unwrap();
        write("05-bad.conflist", "{not json");
        write("10-b.conf", r#"{"cniVersion":"0.4.0","name":"b","type":"bridge"}"#);
        write("20-a.conflist", r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"ptp"}]}"#);
        write("00-ignored.txt", r#"{"cniVersion":"1.0.0","name":"z","type":"ptp"}"#);
        let dirs = vec![dir.path().to_path_buf()];

        let first = select(&dirs, "");
        let (path, list) = first.found.unwrap();
        assert!(path.ends_with("10-b.conf"));
        assert_eq!(list.name, "b");
        assert_eq!(first.skipped.len(), 1);

        let named = select(&dirs, "a").found.unwrap();
        assert!(named.0.ends_with("20-a.conflist"));

        let none = select(&dirs, "missing");
        assert!(none.found.is_none());
        let msg = none.not_found(&dirs, "missing").to_string();
        assert!(msg.contains("named \"missing\"") && msg.contains("05-bad.conflist"), "{msg}");
    }
}
