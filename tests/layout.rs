//! The runtime stays lean: applications embed it, so it must not pull in the compiler's dependencies.

#[test]
fn runtime_depends_on_no_compiler_crate() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/runtime/Cargo.toml")).unwrap();
    let deps = manifest.split("[dependencies]").nth(1).expect("a [dependencies] table");
    let deps = deps.split("\n[").next().unwrap();
    for banned in ["petgraph", "tract", "clap", "resin-ir", "prost-build", "anyhow"] {
        assert!(!deps.contains(banned), "resin-runtime must not depend on {banned}:\n{deps}");
    }
}
