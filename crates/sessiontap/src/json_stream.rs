//! Finding where one JSON object ends in a stream of them, without parsing it.
//!
//! Both JSON streams of a session (resizes, and the `metav1.Status` on the error stream) arrive in
//! pieces of any size. Tracking object/array depth and whether the scanner is inside a string (with
//! its escapes) is enough to know when an object is complete; the complete object is then parsed
//! with `serde_json`.

/// What one byte did to the scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scanned {
    /// Whitespace between objects.
    Between,
    /// The `{` that opens an object.
    Opened,
    /// A byte inside an object.
    Inside,
    /// The `}` that closes the object.
    Closed,
    /// Something other than whitespace or `{` between objects.
    Unexpected,
}

/// Tracks nesting and strings byte by byte.
#[derive(Debug, Default, Clone)]
pub(crate) struct ObjectScanner {
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl ObjectScanner {
    pub(crate) fn push(&mut self, byte: u8) -> Scanned {
        if self.depth == 0 {
            return match byte {
                b' ' | b'\t' | b'\r' | b'\n' => Scanned::Between,
                b'{' => {
                    self.depth = 1;
                    Scanned::Opened
                }
                _ => Scanned::Unexpected,
            };
        }
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if byte == b'\\' {
                self.escaped = true;
            } else if byte == b'"' {
                self.in_string = false;
            }
            return Scanned::Inside;
        }
        match byte {
            b'"' => self.in_string = true,
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => {
                // Mismatched brackets are left for serde_json to reject.
                self.depth -= 1;
                if self.depth == 0 {
                    return Scanned::Closed;
                }
            }
            _ => {}
        }
        Scanned::Inside
    }

    /// Whether the scanner is inside an object.
    pub(crate) fn is_inside(&self) -> bool {
        self.depth > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(input: &[u8]) -> Vec<Scanned> {
        let mut scanner = ObjectScanner::default();
        input.iter().map(|&b| scanner.push(b)).collect()
    }

    #[test]
    fn strings_and_escapes_hide_braces() {
        let input = br#" {"a":"}\"{","b":[{}]} x"#;
        let result = scan(input);
        let closed: Vec<usize> = result
            .iter()
            .enumerate()
            .filter(|(_, s)| **s == Scanned::Closed)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(closed, [input.len() - 3]);
        assert_eq!(result[0], Scanned::Between);
        assert_eq!(result[1], Scanned::Opened);
        assert_eq!(result[input.len() - 1], Scanned::Unexpected);
    }
}
