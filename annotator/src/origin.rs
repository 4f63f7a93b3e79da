//! Where a request comes from and where the server is. The client's address and scheme come from
//! the TCP peer; `X-Forwarded-For` and `X-Forwarded-Proto` are read only when that peer is a
//! trusted proxy (`annotator serve --trusted-proxy CIDR`). The server's own URL is configuration
//! (`--public-url`), never the request's `Host`, which any client can set. And page forms that
//! change state must come from a page of this origin (the `Origin` and `Sec-Fetch-Site` headers
//! that browsers send), on top of their CSRF tokens.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

/// The URL the server is reached at: `scheme://host[:port]`, no path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    origin: String,
    authority: String,
    https: bool,
}

impl PublicUrl {
    pub fn parse(url: &str) -> Result<PublicUrl, String> {
        let url = url.trim().trim_end_matches('/');
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!(
                "public URL {url:?}: must start with https:// (or http://)"
            ));
        };
        let ok = !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
        if !ok {
            return Err(format!(
                "public URL {url:?}: give scheme, host and port only (e.g. https://annotator.example.org)"
            ));
        }
        Ok(PublicUrl {
            origin: format!("{}://{}", if https { "https" } else { "http" }, rest),
            authority: rest.to_ascii_lowercase(),
            https,
        })
    }

    /// An absolute URL of a path of this server.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    pub fn as_str(&self) -> &str {
        &self.origin
    }
}

/// What the server knows about its network position.
#[derive(Debug, Clone, Default)]
pub struct Network {
    /// Where workers and requesters reach the server; `None` when not configured and not
    /// derivable from the bind address.
    pub public_url: Option<PublicUrl>,
    /// Peers whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
}

/// Parses `--trusted-proxy` values: CIDRs (`10.0.0.0/8`) or single addresses.
pub fn parse_proxy(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("trusted proxy {s:?}: give an address or a CIDR like 10.0.0.0/8"))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl Network {
    pub fn new(public_url: Option<PublicUrl>, trusted_proxies: Vec<IpNet>) -> Self {
        Network {
            public_url,
            trusted_proxies,
        }
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }

    /// The TCP peer, or for a trusted proxy, the nearest untrusted address its
    /// `X-Forwarded-For` names (the chain is read from the right: each proxy appends).
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        if !self.trusted(peer) {
            return Some(peer);
        }
        let chain: Vec<IpAddr> = header(req.headers(), "x-forwarded-for")
            .unwrap_or("")
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        Some(
            chain
                .iter()
                .rev()
                .copied()
                .find(|ip| !self.trusted(*ip))
                .or_else(|| chain.first().copied())
                .unwrap_or(peer),
        )
    }

    /// The client address as a rate-limit key.
    pub fn client_key(&self, req: &HttpRequest) -> String {
        self.client_ip(req)
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
    }

    /// Whether the client reached the server over HTTPS: the public URL says so, or a trusted
    /// proxy does.
    pub fn is_https(&self, req: &HttpRequest) -> bool {
        if self.public_url.as_ref().is_some_and(PublicUrl::is_https) {
            return true;
        }
        let from_proxy = req.peer_addr().is_some_and(|p| self.trusted(p.ip()));
        from_proxy
            && header(req.headers(), "x-forwarded-proto")
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
    }

    /// Whether a browser request was made by a page of this site. Browsers send `Sec-Fetch-Site`
    /// and, on POST, `Origin`; a request with neither is not from a browser, so a cross-site page
    /// cannot have made it (its CSRF token is checked as well). `Origin: null` (sandboxed frames,
    /// `data:` pages) is refused.
    pub fn same_origin(&self, req: &HttpRequest) -> bool {
        let headers = req.headers();
        if let Some(site) = header(headers, "sec-fetch-site")
            && !matches!(site, "same-origin" | "none")
        {
            return false;
        }
        let Some(origin) = header(headers, "origin") else {
            return true;
        };
        let Some(authority) = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .map(str::to_ascii_lowercase)
        else {
            return false;
        };
        // A browser sends the Host it connected to; a cross-site page cannot change it.
        let host = header(headers, "host").map(str::to_ascii_lowercase);
        host.as_deref() == Some(authority.as_str())
            || self
                .public_url
                .as_ref()
                .is_some_and(|u| u.authority == authority)
    }

    /// A path of this server as the requester should hand it out: absolute with the public URL.
    pub fn url(&self, path: &str) -> String {
        match &self.public_url {
            Some(u) => u.join(path),
            None => path.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn net() -> Network {
        Network::new(
            Some(PublicUrl::parse("https://annotator.example.org/").unwrap()),
            vec![parse_proxy("10.0.0.0/8").unwrap()],
        )
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let n = net();
        let direct = TestRequest::default()
            .peer_addr("203.0.113.9:5000".parse().unwrap())
            .insert_header(("X-Forwarded-For", "198.51.100.1"))
            .to_http_request();
        assert_eq!(n.client_ip(&direct), Some("203.0.113.9".parse().unwrap()));
        let proxied = TestRequest::default()
            .peer_addr("10.1.2.3:5000".parse().unwrap())
            .insert_header(("X-Forwarded-For", "198.51.100.7, 198.51.100.1, 10.9.9.9"))
            .to_http_request();
        assert_eq!(n.client_ip(&proxied), Some("198.51.100.1".parse().unwrap()));
        let plain = Network::default();
        let spoofed = TestRequest::default()
            .peer_addr("203.0.113.9:5000".parse().unwrap())
            .insert_header(("X-Forwarded-Proto", "https"))
            .to_http_request();
        assert!(!plain.is_https(&spoofed));
        assert!(n.is_https(&spoofed), "the public URL is https");
    }

    #[test]
    fn cross_site_requests_are_told_apart() {
        let n = net();
        let req = |headers: &[(&str, &str)]| {
            let mut r = TestRequest::post().insert_header(("Host", "127.0.0.1:8080"));
            for (k, v) in headers {
                r = r.insert_header((*k, *v));
            }
            r.to_http_request()
        };
        assert!(n.same_origin(&req(&[])));
        assert!(n.same_origin(&req(&[("Origin", "http://127.0.0.1:8080")])));
        assert!(n.same_origin(&req(&[("Origin", "https://annotator.example.org")])));
        assert!(!n.same_origin(&req(&[("Origin", "https://evil.example")])));
        assert!(!n.same_origin(&req(&[("Origin", "null")])));
        assert!(!n.same_origin(&req(&[("Sec-Fetch-Site", "cross-site")])));
        assert!(!n.same_origin(&req(&[("Sec-Fetch-Site", "same-site")])));
        assert!(PublicUrl::parse("annotator.example.org").is_err());
        assert!(PublicUrl::parse("https://a.example/path").is_err());
    }
}
