//! libFuzzer entry point for every target of `optimizer-fuzz`; the target
//! is named by `FUZZ_TARGET`. When `FUZZ_SEED_DIR` is set, the target's
//! seeds are written there first (pass that directory as the corpus).
//! Inputs are held to the same allocation bound as the stable driver's: a
//! breach panics, which libFuzzer reports as a crash and saves the input.

#![no_main]

use std::sync::OnceLock;

use optimizer_fuzz::alloc_bound::{self, Counting};
use optimizer_fuzz::Target;

#[global_allocator]
static ALLOC: Counting = Counting;

static TARGET: OnceLock<Target> = OnceLock::new();

fn target() -> &'static Target {
    TARGET.get_or_init(|| {
        let name = std::env::var("FUZZ_TARGET").unwrap_or_default();
        match optimizer_fuzz::target(&name) {
            Some(t) => t,
            None => {
                let all: Vec<&str> = optimizer_fuzz::targets().iter().map(|t| t.name).collect();
                eprintln!("FUZZ_TARGET={name:?} is not a target: {}", all.join(" "));
                std::process::exit(2)
            }
        }
    })
}

libfuzzer_sys::fuzz_target!(
    init: {
        let t = target();
        if let Ok(dir) = std::env::var("FUZZ_SEED_DIR") {
            let _ = std::fs::create_dir_all(&dir);
            for (i, s) in (t.seeds)().iter().enumerate() {
                let _ = std::fs::write(format!("{dir}/seed-{i}"), s);
            }
        }
    },
    |data: &[u8]| {
        let t = target();
        optimizer_fuzz::take_exempt();
        let base = alloc_bound::live();
        alloc_bound::begin(data);
        (t.run)(data);
        let usage = alloc_bound::end(base);
        if !optimizer_fuzz::take_exempt() && !usage.within(data.len()) {
            panic!(
                "allocation over the bound of {} bytes for {} input bytes: largest single allocation {}, live growth {}",
                alloc_bound::bound(data.len()),
                data.len(),
                usage.largest,
                usage.grew
            );
        }
    }
);
