//! `--ingest-allow` address ranges.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP address range, `ADDR/PREFIX` (a bare address is a range of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpCidr {
    addr: IpAddr,
    prefix: u8,
}

/// A range that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?}: {reason}")]
pub struct CidrError {
    text: String,
    reason: String,
}

impl IpCidr {
    /// `127.0.0.0/8` and `::1/128`: the default writers.
    pub fn loopback() -> Vec<IpCidr> {
        vec![
            IpCidr {
                addr: IpAddr::from([127, 0, 0, 0]),
                prefix: 8,
            },
            IpCidr {
                addr: IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
                prefix: 128,
            },
        ]
    }

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask(u128::from(u32::from(ip)), 32, self.prefix) == u128::from(u32::from(net))
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask(u128::from(ip), 128, self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

/// `value` (of `bits` bits) with all but its first `prefix` bits cleared.
fn mask(value: u128, bits: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let keep = u128::MAX << (bits - prefix);
    let width = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    value & keep & width
}

impl FromStr for IpCidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason: &str| CidrError {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| error("expected an IP address or ADDR/PREFIX, e.g. 10.0.0.0/8"))?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits && !prefix.starts_with('+'))
                .ok_or_else(|| error(&format!("prefix length must be 0 to {bits}")))?,
        };
        let value = match addr {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        };
        if mask(value, bits, prefix) != value {
            return Err(error("address bits set beyond the prefix length"));
        }
        Ok(IpCidr { addr, prefix })
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> IpCidr {
        text.parse().expect("cidr")
    }

    #[test]
    fn reads_and_matches_ranges() {
        let net = cidr("10.1.0.0/16");
        assert!(net.contains("10.1.2.3".parse().expect("ip")));
        assert!(!net.contains("10.2.0.1".parse().expect("ip")));
        assert!(net.contains("::ffff:10.1.0.9".parse().expect("ip")));
        assert!(cidr("0.0.0.0/0").contains("8.8.8.8".parse().expect("ip")));
        assert!(!cidr("0.0.0.0/0").contains("::2".parse().expect("ip")));
        assert!(cidr("fd7a:115c:a1e0::/48").contains("fd7a:115c:a1e0::5".parse().expect("ip")));
        assert!(cidr("192.168.1.7").contains("192.168.1.7".parse().expect("ip")));
        assert!(!cidr("192.168.1.7").contains("192.168.1.8".parse().expect("ip")));
        let loopback = IpCidr::loopback();
        assert!(loopback
            .iter()
            .any(|c| c.contains("127.0.0.1".parse().expect("ip"))));
        assert!(loopback
            .iter()
            .any(|c| c.contains("::1".parse().expect("ip"))));
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0.1/8",
            "x/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "::/129",
        ] {
            assert!(bad.parse::<IpCidr>().is_err(), "{bad}");
        }
    }
}
