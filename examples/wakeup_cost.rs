//! What one thread waking another costs on this machine: two threads bounce one byte over a unix
//! socket pair, once pinned to different CPUs and once to the same CPU, and the round trip is
//! printed. On the 2-vCPU VM arsyncfs is developed on, the cross-CPU round trip is what makes the
//! reactor spin briefly before sleeping (docs/reactor.md).
//!
//! `cargo run --release --example wakeup_cost [ROUND_TRIPS]`

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use rustix::thread::{CpuSet, sched_setaffinity};

fn pin(cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set).expect("pin the thread to a CPU");
}

/// Median round trip, in microseconds, with the two threads on `cpus`.
fn round_trip_us(cpus: (usize, usize), rounds: usize) -> f64 {
    let (mut a, mut b) = UnixStream::pair().expect("socket pair");
    let echo = std::thread::spawn(move || {
        pin(cpus.1);
        let mut byte = [0u8];
        while b.read_exact(&mut byte).is_ok() {
            if b.write_all(&byte).is_err() {
                break;
            }
        }
    });
    pin(cpus.0);
    let mut byte = [0u8];
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        a.write_all(&byte).unwrap();
        a.read_exact(&mut byte).unwrap();
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(a);
    echo.join().unwrap();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let rounds = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("ROUND_TRIPS is a number"))
        .unwrap_or(20_000);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let same = round_trip_us((0, 0), rounds);
    println!("same CPU:       median round trip {same:.1} us");
    if cpus > 1 {
        let cross = round_trip_us((0, 1), rounds);
        println!("across CPUs:    median round trip {cross:.1} us");
        println!("ratio:          {:.1}x", cross / same);
    }
}
