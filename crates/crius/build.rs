//! Links the `crius` binary as a fixed-address executable (not PIE). Every pod runs a
//! `crius monitor` (and its forked pod init) from this binary; as a PIE, the dynamic loader
//! relocates the binary's RELRO segment (about 0.5 MiB of vtables and static tables) in each
//! process, turning it into private memory: half of a pod's helper memory. Non-PIE, those pages
//! stay clean file pages shared by every process. The cost is that the main image is not placed
//! at a random address (libraries, heap, stack and mmaps still are), as with Go's default
//! builds of containerd and CRI-O. `CRIUS_PIE=1` at build time keeps a PIE.

fn main() {
    println!("cargo:rerun-if-env-changed=CRIUS_PIE");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" && std::env::var("CRIUS_PIE").as_deref() != Ok("1") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
