//! Where a start's time goes, from the runtime's own start timeline (crius reports one per pod
//! and per container in its verbose status: step name, start, duration). A runtime without one
//! gets a row saying so, not a figure.

use std::collections::BTreeMap;

use k8s_cri::v1 as cri;

use super::{Ctx, Series, timed};

/// Most objects asked for their timeline (enough for percentiles, cheap on a large run).
const SAMPLE: usize = 20;

impl Ctx {
    /// One row per RunPodSandbox step over `pod_ids`.
    pub(super) async fn pod_step_rows(&self, key: &str, label: &str, pod_ids: &[String]) {
        let mut infos = Vec::new();
        for id in pod_ids.iter().take(SAMPLE) {
            let req = cri::PodSandboxStatusRequest { pod_sandbox_id: id.clone(), verbose: true };
            if let (_, Ok(resp)) = timed(self.timeout, self.rt.clone().pod_sandbox_status(req)).await {
                infos.push(resp.info);
            }
        }
        self.step_rows(&format!("pod_step_{key}"), &format!("RunPodSandbox, {label}"), &infos);
    }

    /// One row per CreateContainer and StartContainer step over `container_ids`.
    pub(super) async fn container_step_rows(&self, container_ids: &[String]) {
        let mut infos = Vec::new();
        for id in container_ids.iter().take(SAMPLE) {
            let req = cri::ContainerStatusRequest { container_id: id.clone(), verbose: true };
            if let (_, Ok(resp)) = timed(self.timeout, self.rt.clone().container_status(req)).await {
                infos.push(resp.info);
            }
        }
        self.step_rows("container_step", "CreateContainer + StartContainer", &infos);
    }

    fn step_rows(&self, key: &str, call: &str, infos: &[std::collections::HashMap<String, String>]) {
        let by_step = steps_by_name(infos);
        if by_step.is_empty() {
            let mut s = Series::new(key, format!("{call}: per-step timeline"));
            s.skip("the runtime reports no start timeline in its verbose status");
            self.push_series(s);
            return;
        }
        for (step, durations) in by_step {
            let mut s = Series::new(&format!("{key}_{step}"), format!("{call}: step `{step}`"));
            for d in durations {
                s.push(d);
            }
            self.push_series(s);
        }
    }
}

/// Step durations in ms by step name (in the order the steps first appear), from verbose infos
/// holding `{"timeline":[{"step":..,"duration_us":..}]}` under the "info" key.
fn steps_by_name(infos: &[std::collections::HashMap<String, String>]) -> Vec<(String, Vec<f64>)> {
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for info in infos {
        let Some(json) = info.get("info").and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok()) else {
            continue;
        };
        for step in json["timeline"].as_array().into_iter().flatten() {
            let (Some(name), Some(us)) = (step["step"].as_str(), step["duration_us"].as_f64()) else { continue };
            if !by.contains_key(name) {
                order.push(name.to_string());
            }
            by.entry(name.to_string()).or_default().push(us / 1000.0);
        }
    }
    order
        .into_iter()
        .map(|name| {
            let d = by.remove(&name).unwrap_or_default();
            (name, d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn steps_are_grouped_in_order_and_junk_is_skipped() {
        let info = |t: &str| HashMap::from([("info".to_string(), t.to_string())]);
        let infos = vec![
            info(r#"{"timeline":[{"step":"reserve","duration_us":10},{"step":"network_setup","duration_us":5000}]}"#),
            info(r#"{"timeline":[{"step":"reserve","duration_us":30},{"step":"network_setup","duration_us":7000}]}"#),
            info("not json"),
            HashMap::new(),
        ];
        let steps = steps_by_name(&infos);
        assert_eq!(
            steps,
            vec![("reserve".to_string(), vec![0.01, 0.03]), ("network_setup".to_string(), vec![5.0, 7.0])]
        );
        assert!(steps_by_name(&[info(r#"{"pid":1}"#)]).is_empty());
    }
}
