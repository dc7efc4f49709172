//! The CRI v1 gRPC layer: each handler validates and converts its request, calls one domain
//! method, and maps the result. The only crate that knows tonic.

mod admin;
mod convert;
mod image;
mod readiness;
mod runtime;
mod status;

use std::sync::Arc;

use k8s_cri::v1::image_service_server::ImageServiceServer;
use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;
use tonic::service::interceptor::InterceptedService;

pub use admin::{AdminImages, api as admin_api};
pub use image::CriImageService;
pub use readiness::Readiness;
pub use runtime::{CgroupDriver, CriRuntimeService, RuntimeInfo};
pub use status::to_status;

/// CRI messages can be large (ListContainers on a busy node, image configs): 16 MiB like the kubelet.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

pub type RuntimeServer = InterceptedService<RuntimeServiceServer<CriRuntimeService>, Readiness>;
pub type ImageServer = InterceptedService<ImageServiceServer<CriImageService>, Readiness>;
pub type AdminImageServer = InterceptedService<admin_api::images_server::ImagesServer<AdminImages>, Readiness>;

/// crius's admin image service, answering Unavailable until `readiness` is set, as CRI does.
pub fn admin_images(images: Arc<crius_core::image::ImageService>, readiness: Readiness) -> AdminImageServer {
    InterceptedService::new(admin_api::images_server::ImagesServer::new(AdminImages::new(images)), readiness)
}

/// Both CRI services, answering Unavailable until `readiness` is set.
pub fn services(
    containers: Arc<crius_core::container::ContainerService>,
    images: Arc<crius_core::image::ImageService>,
    stats: Arc<crius_core::stats::StatsService>,
    streams: Arc<crius_stream::StreamServer>,
    info: RuntimeInfo,
    readiness: Readiness,
) -> (RuntimeServer, ImageServer) {
    let runtime = RuntimeServiceServer::new(
        CriRuntimeService::new(containers, stats, streams, info).with_readiness(readiness.clone()),
    )
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let image = ImageServiceServer::new(CriImageService::new(images))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    (InterceptedService::new(runtime, readiness.clone()), InterceptedService::new(image, readiness))
}
