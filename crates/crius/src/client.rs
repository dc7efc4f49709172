//! A CRI client over a unix socket, for `crius ctl` (and later `crius bench`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use crius_server::admin_api::images_client::ImagesClient;
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

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
        .max_decoding_message_size(crius_server::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(crius_server::MAX_MESSAGE_BYTES)
}

pub fn image(channel: Channel) -> ImageServiceClient<Channel> {
    ImageServiceClient::new(channel)
        .max_decoding_message_size(crius_server::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(crius_server::MAX_MESSAGE_BYTES)
}

/// crius's admin image API (import), on the same socket as CRI.
pub fn admin_images(channel: Channel) -> ImagesClient<Channel> {
    ImagesClient::new(channel)
        .max_decoding_message_size(crius_server::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(crius_server::MAX_MESSAGE_BYTES)
}
