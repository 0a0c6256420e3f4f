#[path = "common/reactor_util.rs"]
mod reactor_util;
#[path = "common/rng.rs"]
mod rng;

use std::fs::OpenOptions;
use std::sync::Arc;

use arsyncfs::reactor::{Reactor, ReactorConfig};
use reactor_util::{Answer, ChannelCompletions, Tagged};

#[test]
fn write_then_read_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let file = Arc::new(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap(),
    );
    let reactor = Reactor::<ChannelCompletions>::start(ReactorConfig::default()).unwrap();
    let h = reactor.handle();
    let (tx, rx) = crossbeam_channel::unbounded();
    h.write(file.clone(), 10, b"hello world", Tagged(1, tx.clone()));
    match rx.recv().unwrap() {
        Answer::Write(1, Ok(11)) => {}
        other => panic!("{other:?}"),
    }
    h.read(file.clone(), 0, 100, Tagged(2, tx.clone()));
    match rx.recv().unwrap() {
        Answer::Read(2, Ok(data)) => assert_eq!(&data[..], b"\0\0\0\0\0\0\0\0\0\0hello world"),
        other => panic!("{other:?}"),
    }
    h.read(file.clone(), 12, 3, Tagged(3, tx.clone()));
    match rx.recv().unwrap() {
        Answer::Read(3, Ok(data)) => assert_eq!(&data[..], b"llo"),
        other => panic!("{other:?}"),
    }
    h.sync(file.clone(), false, Tagged(4, tx.clone()));
    assert!(matches!(rx.recv().unwrap(), Answer::Done(4, Ok(()))));
    h.close(file, Tagged(5, tx.clone()));
    assert!(matches!(rx.recv().unwrap(), Answer::Done(5, Ok(()))));
    reactor.shutdown();
    let stats = h.stats();
    assert_eq!(stats.pool.in_use, 0);
    assert_eq!(stats.pool.taken, stats.pool.returned);
}
