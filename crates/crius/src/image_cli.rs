//! `crius image import|ls|rm`: the image store without a kubelet. With the daemon stopped they
//! open the store directly; while it runs they go through its socket (CRI for ls and rm, crius's
//! admin API for import, which CRI lacks).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use crius_core::image::{ImageRecord, ImageService};
use crius_image::{ImageError, ImageStoreImpl, StoreOptions};
use crius_server::admin_api;
use k8s_cri::v1 as cri;

use crate::client;
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// Load an OCI image layout or docker-archive tarball (plain, gzip or zstd) into the store.
    Import { file: PathBuf },
    /// List images: id, size, names.
    Ls,
    /// Remove images by name, digest or id (one of several tags removes only that tag).
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
    },
}

pub fn run(args: ImageArgs, config: &Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let options = StoreOptions {
        root: config.root.clone(),
        registries: config.registries.clone(),
        pull: config.image_pull.clone(),
    };
    let store = match ImageStoreImpl::open(options, runtime.handle().clone()) {
        Ok((store, _)) => store,
        Err(ImageError::Locked { .. }) => return runtime.block_on(through_daemon(args.command, config)),
        Err(e) => return Err(e).context("opening the image store"),
    };
    let images = ImageService::new(Arc::new(store.clone()));
    match args.command {
        ImageCommand::Import { file } => {
            let imported = store.import_archive(&file).with_context(|| format!("importing {}", file.display()))?;
            for img in &imported {
                println!("imported {} {}", img.id, names(img));
            }
        }
        ImageCommand::Ls => print_list(images.list(None)?.iter().map(|i| (i.id.to_string(), i.size, names(i)))),
        ImageCommand::Rm { images: specs } => {
            for spec in specs {
                images.remove(&spec).with_context(|| format!("removing {spec}"))?;
                println!("removed {spec}");
            }
        }
    }
    Ok(())
}

/// The daemon holds the store: ask it.
async fn through_daemon(command: ImageCommand, config: &Config) -> anyhow::Result<()> {
    let channel = client::connect(&config.listen)
        .await
        .context("the image store is in use by a crius daemon, and its socket does not answer")?;
    let mut c = client::image(channel.clone());
    match command {
        ImageCommand::Ls => {
            let list = c.list_images(cri::ListImagesRequest::default()).await?.into_inner().images;
            print_list(list.into_iter().map(|i| {
                let names = shown_names(&i.repo_tags, &i.repo_digests);
                (i.id, i.size, names)
            }));
        }
        ImageCommand::Rm { images } => {
            for image in images {
                let spec = cri::ImageSpec { image: image.clone(), ..Default::default() };
                c.remove_image(cri::RemoveImageRequest { image: Some(spec) })
                    .await
                    .with_context(|| format!("removing {image}"))?;
                println!("removed {image}");
            }
        }
        ImageCommand::Import { file } => {
            // The daemon resolves the path in its own working directory: send an absolute one.
            let path = std::fs::canonicalize(&file).with_context(|| format!("reading {}", file.display()))?;
            let request = admin_api::ImportRequest { path: path.to_string_lossy().into_owned() };
            let imported = client::admin_images(channel)
                .import(request)
                .await
                .map_err(|s| anyhow::anyhow!("{}", s.message()))
                .with_context(|| format!("importing {} through the crius daemon", file.display()))?;
            for img in imported.into_inner().images {
                println!("imported {} {}", img.id, shown_names(&img.repo_tags, &img.repo_digests));
            }
        }
    }
    Ok(())
}

fn names(i: &ImageRecord) -> String {
    shown_names(&i.repo_tags, &i.repo_digests)
}

/// An image's tags, else its digests (an untagged image), else `<none>`.
fn shown_names(tags: &[String], digests: &[String]) -> String {
    let names = if tags.is_empty() { digests } else { tags };
    if names.is_empty() { "<none>".into() } else { names.join(", ") }
}

fn print_list(rows: impl Iterator<Item = (String, u64, String)>) {
    println!("{:<13} {:>10}  NAMES", "IMAGE ID", "SIZE");
    for (id, size, names) in rows {
        let short: String = id.trim_start_matches("sha256:").chars().take(13).collect();
        println!("{short:<13} {:>10}  {names}", human(size));
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[u]) }
}
