//! What to inject: the fault plan and its text form.
//!
//! `seed=7,read=eio:0.05+short:0.1,write=short:0.1,fsync=eio:0.02,meta=eio:0.01,drain=eio:1`:
//! comma-separated items, `seed=N` (default 1) and `OP=FAULT:RATE[+FAULT:RATE...]`, where OP is an
//! operation kind (see [`FaultKind`]), `meta` all the metadata kinds at once, or `drain` every data
//! operation started while a reactor drains at shutdown; FAULT is `eio`, `enospc`, `eintr`,
//! `eagain` or `short` (only `eio` for `close` and `drain`, `eintr` and `eagain` only on the data
//! path, `short` only for `read` and `write`); RATE the fraction of those operations that get it
//! (0 < RATE <= 1, the rates of one OP adding up to at most 1, and those of its `eintr` and
//! `eagain`, which are retried, to less than 1). An OP given twice adds its faults.

use std::fmt;

use super::kind::FaultKind;

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    Eio,
    Enospc,
    Eintr,
    Eagain,
    /// The operation runs on a shorter window than asked (at least one byte).
    Short,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::Eio,
        Fault::Enospc,
        Fault::Eintr,
        Fault::Eagain,
        Fault::Short,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Eio => "eio",
            Fault::Enospc => "enospc",
            Fault::Eintr => "eintr",
            Fault::Eagain => "eagain",
            Fault::Short => "short",
        }
    }

    pub fn index(self) -> usize {
        Fault::ALL.iter().position(|&f| f == self).expect("listed")
    }

    /// The errno the fault answers with (`None` for a short operation).
    pub fn errno(self) -> Option<i32> {
        match self {
            Fault::Eio => Some(libc::EIO),
            Fault::Enospc => Some(libc::ENOSPC),
            Fault::Eintr => Some(libc::EINTR),
            Fault::Eagain => Some(libc::EAGAIN),
            Fault::Short => None,
        }
    }
}

/// One fault and the fraction of an operation kind's calls that get it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub op: FaultKind,
    pub fault: Fault,
    pub rate: f64,
}

/// A whole fault plan: the seed and the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub seed: u64,
    pub rules: Vec<Rule>,
}

/// A spec that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(pub String);

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fault plan: {}", self.0)
    }
}

impl std::error::Error for PlanError {}

fn err<T>(msg: String) -> Result<T, PlanError> {
    Err(PlanError(msg))
}

impl Plan {
    /// Parses the text form (module docs).
    pub fn parse(spec: &str) -> Result<Plan, PlanError> {
        let mut plan = Plan {
            seed: 1,
            rules: Vec::new(),
        };
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((key, value)) = item.split_once('=') else {
                return err(format!("'{item}': expected KEY=VALUE"));
            };
            let (key, value) = (key.trim(), value.trim());
            if key == "seed" {
                plan.seed = value
                    .parse()
                    .map_err(|_| PlanError(format!("seed '{value}': not a number")))?;
                continue;
            }
            let ops: Vec<FaultKind> = if key == "meta" {
                FaultKind::META.to_vec()
            } else {
                match FaultKind::ALL.iter().find(|o| o.name() == key) {
                    Some(&op) => vec![op],
                    None => return err(format!("'{key}': not an operation kind")),
                }
            };
            for part in value.split('+') {
                let (fault, rate) = parse_fault(part)?;
                for &op in &ops {
                    plan.add(Rule { op, fault, rate })?;
                }
            }
        }
        Ok(plan)
    }

    fn add(&mut self, rule: Rule) -> Result<(), PlanError> {
        let op = rule.op.name();
        match rule.fault {
            Fault::Short if !moves_data(rule.op) => {
                return err(format!("{op}: moves no data, cannot be short"));
            }
            _ if answered_once(rule.op) && rule.fault != Fault::Eio => {
                let fault = rule.fault.name();
                return err(format!(
                    "{op}={fault}: only eio: a close (which any operation of a draining reactor \
                     may be) is made once and answered whatever it did"
                ));
            }
            Fault::Eintr | Fault::Eagain if !retried(rule.op) => {
                let fault = rule.fault.name();
                return err(format!(
                    "{op}={fault}: only the data path (read, write, fsync, fallocate) retries \
                     EINTR and EAGAIN; a metadata call or a close passes them on"
                ));
            }
            _ => {}
        }
        let sum = |counted: fn(Fault) -> bool| -> f64 {
            self.rules
                .iter()
                .chain([&rule])
                .filter(|r| r.op == rule.op && counted(r.fault))
                .map(|r| r.rate)
                .sum()
        };
        let total = sum(|_| true);
        if total > 1.0 + 1e-9 {
            return err(format!("{op}: the rates add up to {total}, more than 1"));
        }
        // Every attempt would be interrupted, and retried: the request would never end.
        let retried = sum(|f| matches!(f, Fault::Eintr | Fault::Eagain));
        if retried >= 1.0 - 1e-9 {
            return err(format!(
                "{op}: eintr and eagain, which are retried, add up to {retried}: every attempt \
                 would be retried forever"
            ));
        }
        self.rules.push(rule);
        Ok(())
    }
}

/// Whether the operation moves data, so that it can be cut short.
fn moves_data(op: FaultKind) -> bool {
    matches!(op, FaultKind::Read | FaultKind::Write)
}

/// Whether the kind's faults may fall on the close of a backing file, whose answer (to a RELEASE)
/// cannot be anything but what the close did, or an error: the `drain` faults fall on whatever
/// a draining reactor runs, closes included.
fn answered_once(op: FaultKind) -> bool {
    matches!(op, FaultKind::Close | FaultKind::Drain)
}

/// Whether the daemon makes a call of this kind again after EINTR or EAGAIN: on the data path
/// they only mean a passing condition. A metadata call is made once (local filesystems do not
/// answer EINTR there, and EAGAIN means something: an O_NONBLOCK open of a file under a lease),
/// and a close let go of the descriptor whatever it answered.
fn retried(op: FaultKind) -> bool {
    matches!(
        op,
        FaultKind::Read | FaultKind::Write | FaultKind::Fsync | FaultKind::Fallocate
    )
}

fn parse_fault(part: &str) -> Result<(Fault, f64), PlanError> {
    let Some((name, rate)) = part.trim().split_once(':') else {
        return err(format!("'{part}': expected FAULT:RATE"));
    };
    let Some(&fault) = Fault::ALL.iter().find(|f| f.name() == name.trim()) else {
        return err(format!(
            "'{name}': not a fault (eio, enospc, eintr, eagain, short)"
        ));
    };
    match rate.trim().parse::<f64>() {
        Ok(r) if r > 0.0 && r <= 1.0 => Ok((fault, r)),
        _ => err(format!("'{rate}': a rate is a number in (0, 1]")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_form() {
        let p =
            Plan::parse("seed=7, read=eio:0.05+short:0.1,write=short:0.1,fsync=eio:0.02").unwrap();
        assert_eq!(p.seed, 7);
        assert_eq!(
            p.rules,
            vec![
                Rule {
                    op: FaultKind::Read,
                    fault: Fault::Eio,
                    rate: 0.05
                },
                Rule {
                    op: FaultKind::Read,
                    fault: Fault::Short,
                    rate: 0.1
                },
                Rule {
                    op: FaultKind::Write,
                    fault: Fault::Short,
                    rate: 0.1
                },
                Rule {
                    op: FaultKind::Fsync,
                    fault: Fault::Eio,
                    rate: 0.02
                },
            ]
        );
        let meta = Plan::parse("meta=eio:0.5").unwrap();
        assert_eq!(meta.seed, 1);
        assert_eq!(meta.rules.len(), FaultKind::META.len());
        assert!(Plan::parse("").unwrap().rules.is_empty());
    }

    #[test]
    fn refuses_what_cannot_work() {
        for bad in [
            "read",
            "seed=x",
            "bogus=eio:0.1",
            "read=crash:0.1",
            "read=eio",
            "read=eio:0",
            "read=eio:1.5",
            "read=eio:0.6,read=short:0.6",
            "lookup=short:0.1",
            "mkdir=eagain:0.1",
            "setattr=eintr:0.1",
            "open=eintr:0.1",
            "meta=eintr:0.1",
            "flush=eagain:0.1",
            "close=eintr:0.1",
            "close=enospc:0.1",
            "drain=eintr:0.1",
            "drain=eagain:0.1",
            "drain=short:0.5",
            "read=eintr:1",
            "read=eintr:0.5+eagain:0.5",
            "write=eagain:0.7,write=eintr:0.3",
        ] {
            assert!(Plan::parse(bad).is_err(), "{bad} was accepted");
        }
        assert!(Plan::parse("drain=eio:1").is_ok());
        assert!(Plan::parse("read=eintr:0.5+eagain:0.4+eio:0.1").is_ok());
    }
}
