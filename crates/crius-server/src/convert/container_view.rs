//! Containers as CRI reports them: status, list items, filters and events.

use std::collections::HashMap;

use crius_core::container::model::{ContainerState, Propagation};
use crius_core::container::{ContainerEvent, ContainerEventKind, ContainerFilter, ContainerView};
use k8s_cri::v1 as cri;

fn state(s: ContainerState) -> i32 {
    match s {
        ContainerState::Creating | ContainerState::Created => cri::ContainerState::ContainerCreated as i32,
        ContainerState::Running => cri::ContainerState::ContainerRunning as i32,
        ContainerState::Exited => cri::ContainerState::ContainerExited as i32,
    }
}

fn metadata(view: &ContainerView) -> cri::ContainerMetadata {
    let md = &view.record.config.metadata;
    cri::ContainerMetadata { name: md.name.clone(), attempt: md.attempt }
}

fn image_spec(view: &ContainerView) -> cri::ImageSpec {
    cri::ImageSpec { image: view.record.config.image.clone(), ..Default::default() }
}

fn map(m: &std::collections::BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn propagation(p: Propagation) -> i32 {
    match p {
        Propagation::Private => cri::MountPropagation::PropagationPrivate as i32,
        Propagation::HostToContainer => cri::MountPropagation::PropagationHostToContainer as i32,
        Propagation::Bidirectional => cri::MountPropagation::PropagationBidirectional as i32,
    }
}

pub fn container(view: &ContainerView) -> cri::Container {
    let r = &view.record;
    cri::Container {
        id: r.id.clone(),
        pod_sandbox_id: r.pod_id.clone(),
        metadata: Some(metadata(view)),
        image: Some(image_spec(view)),
        image_ref: r.image_id.clone(),
        state: state(r.state),
        created_at: r.created_at_ns,
        labels: map(&r.config.labels),
        annotations: map(&r.config.annotations),
        image_id: r.image_id.clone(),
    }
}

pub fn container_status(view: &ContainerView) -> cri::ContainerStatus {
    let r = &view.record;
    let exit = r.exit.as_ref();
    cri::ContainerStatus {
        id: r.id.clone(),
        metadata: Some(metadata(view)),
        state: state(r.state),
        created_at: r.created_at_ns,
        started_at: r.started_at_ns,
        finished_at: exit.map(|e| e.finished_at_ns).unwrap_or_default(),
        exit_code: exit.map(|e| e.exit_code).unwrap_or_default(),
        image: Some(image_spec(view)),
        image_ref: r.image_id.clone(),
        reason: view.reason().to_string(),
        message: exit.map(|e| e.message.clone()).unwrap_or_default(),
        labels: map(&r.config.labels),
        annotations: map(&r.config.annotations),
        mounts: r
            .config
            .mounts
            .iter()
            .map(|m| cri::Mount {
                container_path: m.container_path.clone(),
                host_path: m.host_path.clone(),
                readonly: m.readonly,
                selinux_relabel: m.selinux_relabel,
                propagation: propagation(m.propagation),
                ..Default::default()
            })
            .collect(),
        log_path: r.log_path.clone().unwrap_or_default(),
        resources: r
            .resources
            .as_ref()
            .map(|res| cri::ContainerResources { linux: Some(super::container::cri_resources(res)), windows: None }),
        image_id: r.image_id.clone(),
        user: r.user.as_ref().map(|u| cri::ContainerUser {
            linux: Some(cri::LinuxContainerUser {
                uid: i64::from(u.uid),
                gid: i64::from(u.gid),
                supplemental_groups: u.additional_gids.iter().map(|g| i64::from(*g)).collect(),
            }),
        }),
    }
}

pub fn container_filter(filter: Option<cri::ContainerFilter>) -> ContainerFilter {
    let Some(f) = filter else { return ContainerFilter::default() };
    ContainerFilter {
        id: (!f.id.is_empty()).then_some(f.id),
        state: f.state.map(|s| match cri::ContainerState::try_from(s.state) {
            Ok(cri::ContainerState::ContainerCreated) => ContainerState::Created,
            Ok(cri::ContainerState::ContainerRunning) => ContainerState::Running,
            Ok(cri::ContainerState::ContainerExited) => ContainerState::Exited,
            // UNKNOWN matches nothing crius lists (Creating is never listed); an out-of-range value too.
            _ => ContainerState::Creating,
        }),
        pod_id: (!f.pod_sandbox_id.is_empty()).then_some(f.pod_sandbox_id),
        labels: f.label_selector.into_iter().collect(),
    }
}

pub fn event_type(kind: ContainerEventKind) -> i32 {
    match kind {
        ContainerEventKind::Created => cri::ContainerEventType::ContainerCreatedEvent as i32,
        ContainerEventKind::Started => cri::ContainerEventType::ContainerStartedEvent as i32,
        ContainerEventKind::Stopped => cri::ContainerEventType::ContainerStoppedEvent as i32,
        ContainerEventKind::Deleted => cri::ContainerEventType::ContainerDeletedEvent as i32,
    }
}

pub fn event(
    ev: &ContainerEvent,
    pod: Option<cri::PodSandboxStatus>,
    statuses: Vec<cri::ContainerStatus>,
) -> cri::ContainerEventResponse {
    cri::ContainerEventResponse {
        container_id: ev.container_id.clone(),
        container_event_type: event_type(ev.kind),
        created_at: ev.at_ns,
        pod_sandbox_status: pod,
        containers_statuses: statuses,
    }
}
