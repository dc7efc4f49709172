//! A CRI client over a unix socket (the same way `crius ctl` connects).

use std::path::{Path, PathBuf};

use anyhow::Context;
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

/// Large enough for ListContainers/ListPodSandbox replies with thousands of entries.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// `unix:///run/x.sock` or a plain path.
pub fn socket_path(endpoint: &str) -> PathBuf {
    PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or(endpoint))
}

pub async fn connect(socket: &Path) -> anyhow::Result<Channel> {
    let path: PathBuf = socket.to_path_buf();
    // The URI is required by tonic but unused: the connector always dials the socket.
    Endpoint::try_from("http://[::]:0")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        }))
        .await
        .with_context(|| format!("connecting to {}", socket.display()))
}

pub fn runtime(channel: Channel) -> RuntimeServiceClient<Channel> {
    RuntimeServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

pub fn image(channel: Channel) -> ImageServiceClient<Channel> {
    ImageServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms() {
        assert_eq!(socket_path("unix:///run/crius/crius.sock"), PathBuf::from("/run/crius/crius.sock"));
        assert_eq!(socket_path("/tmp/x.sock"), PathBuf::from("/tmp/x.sock"));
    }
}
