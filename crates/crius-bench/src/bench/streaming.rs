//! What a user of kubectl exec and port-forward feels, and what the kubelet's summary API costs:
//! an exec session from the CRI call to the exit code, a port-forward download, and the stats
//! list calls, with the run's pods and containers present.

use std::time::{Duration, Instant};

use crius_stream::client::{self, exit_code, read_to_end};
use crius_stream::request::StreamOptions;
use k8s_cri::v1 as cri;
use tonic::Status;

use super::{Ctx, Pod, Series, timed};
use crate::report::Params;

/// The port `serve` listens on inside the pod, and how much it sends per connection.
const SERVE_PORT: u16 = 18080;
pub const SERVE_MIB: u64 = 32;
/// How long `serve` may take to listen once its container has started.
const SERVE_READY: Duration = Duration::from_secs(5);
const REMOTE_COMMAND: &str = "v4.channel.k8s.io";

impl Ctx {
    /// The stats list calls with `containers` running in `pods`.
    pub(super) async fn phase_stats(&self, p: &Params, pods: &[Pod], containers: usize) {
        let mut ctrs = Series::new("list_container_stats", format!("ListContainerStats with {containers} containers"));
        let mut pod_stats = Series::new("list_pod_stats", format!("ListPodSandboxStats with {} pods", pods.len()));
        if containers == 0 {
            ctrs.skip("no container is running");
            pod_stats.skip("no container is running");
        } else {
            self.phase("ListContainerStats, ListPodSandboxStats");
            for i in 0..p.warmup + p.count {
                let (t, r) = timed(
                    self.timeout,
                    self.rt.clone().list_container_stats(cri::ListContainerStatsRequest::default()),
                )
                .await;
                let r = r.and_then(|resp| {
                    let n = resp.stats.len();
                    if n < containers {
                        return Err(Status::internal(format!("{n} stats for {containers} running containers")));
                    }
                    Ok(())
                });
                ctrs.record(t, &r, i >= p.warmup);
                if ctrs.unsupported() {
                    break;
                }
            }
            for i in 0..p.warmup + p.count {
                let (t, r) = timed(
                    self.timeout,
                    self.rt.clone().list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest::default()),
                )
                .await;
                let r = r.and_then(|resp| {
                    let n = resp.stats.len();
                    if n < pods.len() {
                        return Err(Status::internal(format!("{n} stats for {} ready pods", pods.len())));
                    }
                    Ok(())
                });
                pod_stats.record(t, &r, i >= p.warmup);
                if pod_stats.unsupported() {
                    break;
                }
            }
        }
        self.push_series(ctrs);
        self.push_series(pod_stats);
    }

    /// Exec sessions in `container` and port-forward downloads from a `serve` container in `pod`.
    pub(super) async fn phase_streaming(&self, p: &Params, pod: Option<&Pod>, container: Option<&str>) {
        let mut exec = Series::new("exec_session", "Exec session `true` (CRI Exec, SPDY, to the exit code)");
        let mut forward = Series::new(
            "port_forward",
            format!("PortForward: {SERVE_MIB} MiB through one connection (CRI call to the last byte)"),
        );
        let (Some(pod), Some(container), Some(image)) = (pod, container, p.image.as_deref()) else {
            exec.skip("no container is running");
            forward.skip("no container is running");
            self.push_series(exec);
            self.push_series(forward);
            return;
        };
        self.phase("exec sessions, port-forward");
        for i in 0..p.warmup + p.count {
            let started = Instant::now();
            let r = tokio::time::timeout(self.timeout, self.exec_session(container))
                .await
                .unwrap_or_else(|_| Err(Status::deadline_exceeded(format!("no exit code within {:?}", self.timeout))));
            exec.record(started.elapsed().as_secs_f64() * 1000.0, &r, i >= p.warmup);
            if exec.unsupported() {
                break;
            }
        }
        self.push_series(exec);

        let serve = self.serve_container(pod, image).await;
        match serve {
            Err(s) => forward.error(&s),
            Ok(()) => {
                // Until `serve` listens, a connection brings nothing: wait for a whole one.
                let ready_by = Instant::now() + SERVE_READY;
                while Instant::now() < ready_by && self.download(&pod.id).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                for i in 0..p.warmup + p.count.min(10) {
                    let started = Instant::now();
                    let r = tokio::time::timeout(self.timeout, self.download(&pod.id))
                        .await
                        .unwrap_or_else(|_| Err(Status::deadline_exceeded("the download did not finish")));
                    forward.record(started.elapsed().as_secs_f64() * 1000.0, &r, i >= p.warmup);
                    if forward.unsupported() {
                        break;
                    }
                }
            }
        }
        self.push_series(forward);
    }

    /// Exec `true` through the streaming server, as `kubectl exec` does; Ok once it exited 0.
    async fn exec_session(&self, container: &str) -> Result<(), Status> {
        let req = cri::ExecRequest {
            container_id: container.to_string(),
            cmd: vec!["/bin/true".into()],
            tty: false,
            stdin: false,
            stdout: true,
            stderr: true,
        };
        let url = self.rt.clone().exec(req).await?.into_inner().url;
        let session = client::spdy_connect(&url, &[REMOTE_COMMAND]).await.map_err(stream_error("connecting"))?;
        let streams = session
            .remote_command(StreamOptions { tty: false, stdin: false, stdout: true, stderr: true })
            .await
            .map_err(stream_error("opening the streams"))?;
        let (Some(stdout), Some(stderr)) = (streams.stdout.as_ref(), streams.stderr.as_ref()) else {
            return Err(Status::internal("the exec session has no stdout or stderr stream"));
        };
        let (out, err, status) = tokio::join!(read_to_end(stdout), read_to_end(stderr), read_to_end(&streams.error));
        match exit_code(&status) {
            Ok(0) if out.is_empty() && err.is_empty() => Ok(()),
            Ok(code) => Err(Status::internal(format!(
                "`true` exited {code}: {}",
                String::from_utf8_lossy(&[out, err].concat()).trim()
            ))),
            Err(e) => Err(Status::internal(format!("the exec session failed: {e}"))),
        }
    }

    /// Starts `serve` in the pod (a container of its own, so the pod's other figures are untouched).
    async fn serve_container(&self, pod: &Pod, image: &str) -> Result<(), Status> {
        let mut config = self.container_config("serve", image);
        config.command = vec!["/bin/serve".into(), SERVE_PORT.to_string(), SERVE_MIB.to_string()];
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        };
        let (_, r) = timed(self.timeout, self.rt.clone().create_container(req)).await;
        let id = r?.container_id;
        let (_, r) =
            timed(self.timeout, self.rt.clone().start_container(cri::StartContainerRequest { container_id: id })).await;
        r.map(drop)
    }

    /// One connection's worth from `serve`, as `kubectl port-forward` gets it.
    async fn download(&self, pod: &str) -> Result<(), Status> {
        let req = cri::PortForwardRequest { pod_sandbox_id: pod.to_string(), port: vec![i32::from(SERVE_PORT)] };
        let url = self.rt.clone().port_forward(req).await?.into_inner().url;
        let session = client::spdy_connect(&url, &["portforward.k8s.io"]).await.map_err(stream_error("connecting"))?;
        let (data, error) = session.port_forward(SERVE_PORT, 0).await.map_err(stream_error("opening the streams"))?;
        let mut bytes = 0u64;
        while let Ok(Some(chunk)) = data.recv().await {
            bytes += chunk.len() as u64;
        }
        if bytes != SERVE_MIB << 20 {
            let why = String::from_utf8_lossy(&read_to_end(&error).await).into_owned();
            return Err(Status::internal(format!("got {bytes} of {} bytes: {why}", SERVE_MIB << 20)));
        }
        Ok(())
    }
}

fn stream_error(what: &'static str) -> impl Fn(client::ClientError) -> Status {
    move |e| Status::internal(format!("streaming: {what}: {e}"))
}
