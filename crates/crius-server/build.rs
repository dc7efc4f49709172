fn main() {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .compile_protos(&["proto/crius/admin/v1/admin.proto"], &["proto"])
        .expect("compiling crius's admin API (needs protoc, as k8s-cri does)");
}
