//! Port publishing: Compose's short and long port syntax, and host port assignment that never
//! hands out a port already in use (by the system, another app, or this plan).

use crate::apps::compose::{PortEntry, PortLong};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "" | "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            other => Err(format!("unknown protocol {other:?}")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// A host port and protocol, as the set of ports in use is keyed.
pub type HostPort = (u16, Protocol);

/// One requested publication: container ports (a range of length ≥ 1) and the wanted host ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRequest {
    pub host_ip: Option<String>,
    /// First wanted host port; `None` lets Docker pick an ephemeral one.
    pub published: Option<u16>,
    pub container: u16,
    pub count: u16,
    pub protocol: Protocol,
}

fn port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("{s:?} is not a port number (1-65535)")),
    }
}

/// `"8080"` or `"8080-8090"` → (first, count).
fn range(s: &str) -> Result<(u16, u16), String> {
    match s.split_once('-') {
        None => Ok((port(s)?, 1)),
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if b < a {
                return Err(format!("port range {s:?} runs backwards"));
            }
            Ok((a, b - a + 1))
        }
    }
}

pub fn parse(entry: &PortEntry) -> Result<PortRequest, String> {
    match entry {
        PortEntry::Short(s) => parse_short(s.as_str()),
        PortEntry::Long(l) => parse_long(l),
    }
}

/// `[HOST_IP:][HOST[-HOST]:]CONTAINER[-CONTAINER][/PROTO]`; IPv6 host addresses in brackets.
pub fn parse_short(s: &str) -> Result<PortRequest, String> {
    let (spec, proto) = match s.rsplit_once('/') {
        Some((a, p)) => (a, Protocol::parse(p)?),
        None => (s, Protocol::Tcp),
    };
    let (host_ip, rest) = if let Some(after) = spec.strip_prefix('[') {
        let (ip, rest) = after
            .split_once("]:")
            .ok_or_else(|| format!("{s:?}: unclosed IPv6 address"))?;
        (Some(ip.to_string()), rest)
    } else {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.len() {
            1 | 2 => (None, spec),
            3 => (Some(parts[0].to_string()), &spec[parts[0].len() + 1..]),
            _ => return Err(format!("{s:?} is not a port mapping")),
        }
    };
    let (published, container) = match rest.split_once(':') {
        Some(("", c)) => (None, range(c)?),
        Some((h, c)) => (Some(range(h)?), range(c)?),
        None => (None, range(rest)?),
    };
    if let Some((_, hcount)) = published
        && hcount != container.1
        && hcount != 1
    {
        return Err(format!("{s:?}: host and container ranges differ in length"));
    }
    Ok(PortRequest {
        host_ip: host_ip.filter(|ip| !ip.is_empty()),
        published: published.map(|(p, _)| p),
        container: container.0,
        count: container.1,
        protocol: proto,
    })
}

fn parse_long(l: &PortLong) -> Result<PortRequest, String> {
    let target = l.target.as_ref().ok_or("a long-form port needs `target`")?;
    let (container, count) = range(target.as_str())?;
    let published = match &l.published {
        Some(p) if !p.as_str().is_empty() => Some(range(p.as_str())?.0),
        _ => None,
    };
    Ok(PortRequest {
        host_ip: l.host_ip.clone().filter(|ip| !ip.is_empty()),
        published,
        container,
        count,
        protocol: Protocol::parse(l.protocol.as_deref().unwrap_or("tcp"))?,
    })
}

/// Finds host ports for a request of `count` consecutive ports starting at `wanted`.
#[derive(Debug)]
pub struct Allocator<'a> {
    in_use: &'a BTreeSet<HostPort>,
    taken: BTreeSet<HostPort>,
}

impl<'a> Allocator<'a> {
    pub fn new(in_use: &'a BTreeSet<HostPort>) -> Self {
        Self {
            in_use,
            taken: BTreeSet::new(),
        }
    }

    fn free(&self, start: u16, count: u16, proto: Protocol) -> bool {
        (0..count).all(|i| {
            start.checked_add(i).is_some_and(|p| {
                !self.in_use.contains(&(p, proto)) && !self.taken.contains(&(p, proto))
            })
        })
    }

    /// Takes `wanted..wanted+count` if free; otherwise, when `may_move`, the nearest free block
    /// above it. `Err(port)` names the first clashing port.
    pub fn take(
        &mut self,
        wanted: u16,
        count: u16,
        proto: Protocol,
        may_move: bool,
    ) -> Result<u16, u16> {
        let start = if self.free(wanted, count, proto) {
            wanted
        } else if may_move {
            let first_free = (wanted.saturating_add(1)..=u16::MAX - count.saturating_sub(1))
                .find(|&s| self.free(s, count, proto));
            match first_free {
                Some(s) => s,
                None => return Err(wanted),
            }
        } else {
            let clash = (wanted..wanted.saturating_add(count))
                .find(|&p| !self.free(p, 1, proto))
                .unwrap_or(wanted);
            return Err(clash);
        };
        for i in 0..count {
            self.taken.insert((start + i, proto));
        }
        Ok(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> PortRequest {
        parse_short(s).expect("parses")
    }

    #[test]
    fn short_syntax_forms() {
        let r = req("8080:80");
        assert_eq!((r.published, r.container, r.count), (Some(8080), 80, 1));
        let r = req("80");
        assert_eq!((r.published, r.container), (None, 80));
        let r = req("19132:19132/udp");
        assert_eq!(r.protocol, Protocol::Udp);
        let r = req("127.0.0.1:8001:8001");
        assert_eq!(r.host_ip.as_deref(), Some("127.0.0.1"));
        let r = req("[::1]:9000:9000/tcp");
        assert_eq!(r.host_ip.as_deref(), Some("::1"));
        let r = req("25565-25570:25565-25570");
        assert_eq!((r.published, r.container, r.count), (Some(25565), 25565, 6));
        let r = req("8444:8443/tcp");
        assert_eq!((r.published, r.container), (Some(8444), 8443));
    }

    #[test]
    fn bad_ports_are_rejected() {
        for bad in [
            "0:80", "x:80", "70000:80", "80/icmp", "1-3:1-5", "a:b:c:d", "9-5:9-5",
        ] {
            assert!(parse_short(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allocator_moves_only_when_allowed_and_never_reuses() {
        let in_use: BTreeSet<HostPort> = [(8080, Protocol::Tcp), (8081, Protocol::Tcp)].into();
        let mut a = Allocator::new(&in_use);
        assert_eq!(a.take(8080, 1, Protocol::Udp, false), Ok(8080));
        assert_eq!(a.take(8080, 1, Protocol::Tcp, false), Err(8080));
        assert_eq!(a.take(8080, 1, Protocol::Tcp, true), Ok(8082));
        assert_eq!(a.take(8082, 1, Protocol::Tcp, true), Ok(8083));
        assert_eq!(a.take(8079, 3, Protocol::Tcp, true), Ok(8084));
        assert_eq!(a.take(8079, 3, Protocol::Tcp, false), Err(8080));
    }
}
