//! The `resin` command line.

fn main() {
    std::process::exit(resin::cli::main());
}
