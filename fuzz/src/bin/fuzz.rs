//! The stable fuzz driver: runs each target on its seeds, then on mutants
//! of them, until it has run `--inputs` inputs or `--seconds` seconds
//! passed. A panic fails the target, and so does an input that makes an
//! allocation bigger than the allocation bound or grows live memory past it;
//! the input is saved under `target/fuzz-crashes/`. Exit status 1 when any
//! target failed.
//!
//! ```text
//! fuzz [--inputs N] [--seconds S] [--seed X] [--max-len L] [TARGET..]
//! fuzz --list
//! fuzz --replay FILE TARGET     (one input, with the usual panic output)
//! ```
//!
//! The allocation bound is `optimizer_fuzz::alloc_bound::bound`: 64 bytes
//! per input byte plus 1 MiB (the reasons are in that module).

use std::fs::File;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use optimizer_fuzz::alloc_bound::{self, bound, Counting};
use optimizer_fuzz::mutate::{mutate, Rng};
use optimizer_fuzz::Target;

#[global_allocator]
static ALLOC: Counting = Counting;

// --- running inputs ------------------------------------------------------------------

static PANIC_MESSAGE: Mutex<Option<String>> = Mutex::new(None);

enum Outcome {
    Ok { largest: usize, grew: usize },
    Panic(String),
    Alloc { largest: usize, grew: usize },
}

fn run_one(t: &Target, input: &[u8]) -> Outcome {
    optimizer_fuzz::take_exempt();
    let base = alloc_bound::live();
    alloc_bound::begin(input);
    let result = std::panic::catch_unwind(|| (t.run)(input));
    let usage = alloc_bound::end(base);
    let (largest, grew) = (usage.largest, usage.grew);
    if result.is_err() {
        let msg = PANIC_MESSAGE
            .lock()
            .ok()
            .and_then(|mut m| m.take())
            .unwrap_or_else(|| "panic".into());
        return Outcome::Panic(msg);
    }
    if !optimizer_fuzz::take_exempt() && !usage.within(input.len()) {
        return Outcome::Alloc { largest, grew };
    }
    Outcome::Ok { largest, grew }
}

fn save(dir: &std::path::Path, name: &str, input: &[u8]) -> PathBuf {
    let _ = std::fs::create_dir_all(dir);
    let h = optimizer_core::shared::fnv1a(&[input]);
    let path = dir.join(format!("{name}-{h:016x}.bin"));
    let _ = std::fs::write(&path, input);
    path
}

struct Options {
    inputs: u64,
    seconds: f64,
    seed: u64,
    max_len: usize,
    crash_dir: PathBuf,
}

/// Run one target; `true` when it passed.
fn fuzz(t: &Target, o: &Options) -> bool {
    let oversize = o.crash_dir.join(format!("{}-oversize.bin", t.name));
    let _ = std::fs::create_dir_all(&o.crash_dir);
    alloc_bound::save_oversize_to(File::create(&oversize).ok());
    let seeds = (t.seeds)();
    let mut ring: Vec<Vec<u8>> = Vec::with_capacity(128);
    let mut rng = Rng::new(o.seed ^ optimizer_core::shared::fnv1a(&[t.name.as_bytes()]));
    let start = Instant::now();
    let (mut n, mut largest, mut grew) = (0u64, 0usize, 0usize);
    let mut input: Vec<u8> = Vec::with_capacity(o.max_len);
    let mut failed = None;
    while n < o.inputs {
        if n % 256 == 0 && start.elapsed().as_secs_f64() >= o.seconds {
            break;
        }
        input.clear();
        if let Some(s) = seeds.get(n as usize) {
            input.extend_from_slice(s);
        } else {
            let from_ring = !ring.is_empty() && rng.chance(2);
            let parent = if from_ring {
                &ring[rng.below(ring.len())]
            } else {
                &seeds[rng.below(seeds.len())]
            };
            input.extend_from_slice(parent);
            let other = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, &mut input, other, t.dict, o.max_len);
        }
        n += 1;
        match run_one(t, &input) {
            Outcome::Ok {
                largest: l,
                grew: g,
            } => {
                largest = largest.max(l);
                grew = grew.max(g);
            }
            Outcome::Panic(msg) => {
                failed = Some(format!("panicked: {msg}"));
                break;
            }
            Outcome::Alloc {
                largest: l,
                grew: g,
            } => {
                failed = Some(format!(
                    "allocation over the bound of {} bytes for {} input bytes: \
                     largest single allocation {l}, live growth {g}",
                    bound(input.len()),
                    input.len()
                ));
                break;
            }
        }
        // Keep some mutants as parents: without coverage feedback, this
        // lets mutations stack beyond one step from a seed.
        if rng.chance(16) {
            if ring.len() < 128 {
                ring.push(input.clone());
            } else {
                let i = rng.below(ring.len());
                ring[i] = input.clone();
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    alloc_bound::save_oversize_to(None);
    let _ = std::fs::remove_file(&oversize);
    match failed {
        None => {
            println!(
                "{:<16} ok    {:>11} inputs in {:>7.1} s ({:>9.0}/s); largest allocation {} B, largest live growth {} B",
                t.name,
                n,
                secs,
                n as f64 / secs.max(1e-9),
                largest,
                grew
            );
            true
        }
        Some(why) => {
            let path = save(&o.crash_dir, t.name, &input);
            println!(
                "{:<16} FAIL  after {} inputs: {why}\n                 input saved to {} (replay: fuzz --replay {} {})",
                t.name,
                n,
                path.display(),
                path.display(),
                t.name
            );
            false
        }
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: fuzz [--inputs N] [--seconds S] [--seed X] [--max-len L] [--crash-dir D] [TARGET..]\n       fuzz --list\n       fuzz --replay FILE TARGET"
    );
    std::process::exit(2)
}

fn main() {
    let mut o = Options {
        inputs: u64::MAX,
        seconds: f64::INFINITY,
        seed: 0x5EED,
        max_len: 4096,
        crash_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-crashes"),
    };
    let mut names = Vec::new();
    let mut replay = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--inputs" => o.inputs = value().parse().unwrap_or_else(|_| usage()),
            "--seconds" => o.seconds = value().parse().unwrap_or_else(|_| usage()),
            "--seed" => o.seed = value().parse().unwrap_or_else(|_| usage()),
            "--max-len" => o.max_len = value().parse().unwrap_or_else(|_| usage()),
            "--crash-dir" => o.crash_dir = PathBuf::from(value()),
            "--replay" => replay = Some(PathBuf::from(value())),
            "--list" => {
                for t in optimizer_fuzz::targets() {
                    println!("{}", t.name);
                }
                return;
            }
            s if s.starts_with("--") => usage(),
            s => names.push(s.to_string()),
        }
    }
    let targets: Vec<Target> = if names.is_empty() {
        optimizer_fuzz::targets()
    } else {
        names
            .iter()
            .map(|n| {
                optimizer_fuzz::target(n).unwrap_or_else(|| {
                    eprintln!("no target {n:?} (fuzz --list)");
                    std::process::exit(2)
                })
            })
            .collect()
    };
    if let Some(file) = replay {
        let [t] = targets.as_slice() else { usage() };
        let input = std::fs::read(&file).unwrap_or_else(|e| {
            eprintln!("{}: {e}", file.display());
            std::process::exit(2)
        });
        match run_one(t, &input) {
            Outcome::Ok { largest, grew } => {
                println!(
                    "{}: ok (largest allocation {largest} B, live growth {grew} B, bound {} B)",
                    t.name,
                    bound(input.len())
                );
            }
            Outcome::Alloc { largest, grew } => {
                println!("{}: over the allocation bound (largest allocation {largest} B, live growth {grew} B, bound {} B)", t.name, bound(input.len()));
                std::process::exit(1);
            }
            Outcome::Panic(_) => std::process::exit(1),
        }
        return;
    }
    // Panics are expected events here: keep their message for the report
    // instead of printing each one.
    std::panic::set_hook(Box::new(|info| {
        let msg = match info.location() {
            Some(l) => format!("{} at {}:{}", payload(info.payload()), l.file(), l.line()),
            None => payload(info.payload()),
        };
        if let Ok(mut m) = PANIC_MESSAGE.lock() {
            *m = Some(msg);
        }
    }));
    let mut ok = true;
    for t in &targets {
        ok &= fuzz(t, &o);
    }
    if !ok {
        std::process::exit(1);
    }
}

fn payload(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}
