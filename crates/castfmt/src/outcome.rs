//! Whether a recording arrived whole, as a recorder stores and lists it.

use serde::{Deserialize, Serialize};

/// Whether the whole recording arrived: the `outcome` of a recorder's index entry.
///
/// A recorder client's own view of an upload maps onto it: an upload the recorder confirmed is
/// [`Complete`](Outcome::Complete); one that failed or was cut short by the client is stored as
/// [`Incomplete`](Outcome::Incomplete), with what arrived kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Outcome {
    /// The upload is still streaming in.
    Recording,
    /// The client ended the upload normally.
    Complete,
    /// The upload was cut off (client gone, storage failure, size limit, recorder shut down or
    /// crashed); what arrived is kept.
    Incomplete,
}

impl Outcome {
    /// The JSON and listing spelling: `recording`, `complete` or `incomplete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Recording => "recording",
            Outcome::Complete => "complete",
            Outcome::Incomplete => "incomplete",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelt_the_same_in_json_and_listings() {
        for outcome in [Outcome::Recording, Outcome::Complete, Outcome::Incomplete] {
            let json = serde_json::to_string(&outcome).expect("json");
            assert_eq!(json, format!("\"{}\"", outcome.as_str()));
            assert_eq!(
                serde_json::from_str::<Outcome>(&json).expect("read"),
                outcome
            );
        }
    }
}
