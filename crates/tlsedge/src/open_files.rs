//! The open-file limit a server needs: every connection is a file descriptor, and a recorded
//! session holds three at the proxy (the client, the apiserver, the recorder).

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Raises this process's soft limit on open files to its hard limit, so a server can hold
/// thousands of connections: many systems start programs with a soft limit of 1,024 and a hard
/// limit far above it (processes it starts afterwards inherit the new limit). Returns the soft
/// limit now (`None`: unlimited).
pub fn raise_open_file_limit() -> std::io::Result<Option<u64>> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )?;
    }
    Ok(getrlimit(Resource::Nofile).current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lowered_soft_limit_is_raised_to_the_hard_limit() {
        // Start below the hard limit, as a process started with the usual 1,024 would.
        let limit = getrlimit(Resource::Nofile);
        if let Some(hard) = limit.maximum {
            setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(hard.saturating_sub(1).max(1)),
                    maximum: Some(hard),
                },
            )
            .expect("lower the soft limit");
            assert_ne!(getrlimit(Resource::Nofile).current, Some(hard));
        }
        let raised = raise_open_file_limit().expect("raise");
        let limit = getrlimit(Resource::Nofile);
        assert_eq!(raised, limit.current);
        assert_eq!(limit.current, limit.maximum);
    }
}
