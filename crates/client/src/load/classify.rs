//! Which kind of work the server gave each message (`--work`): the server chooses from
//! the payload alone ([`WorkSpec::choose`]), so the generator, which knows every
//! payload, makes the same choice and can report the slow messages apart.

use echolab_proto::WorkSpec;

/// A message's kind of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WorkClass {
    /// The spec's cheapest kind (every message, for a one-item spec).
    Fast = 0,
    /// A dearer kind: the long tail of a mix such as `cpu:10us,1%block:5ms`.
    Slow = 1,
}

/// Classes the run's messages, when the run was told the server's work.
#[derive(Debug, Clone)]
pub(super) struct Classifier {
    work: Option<WorkSpec>,
}

impl Classifier {
    pub(super) fn new(work: Option<WorkSpec>) -> Classifier {
        Classifier { work }
    }

    /// The class of a reply, from its payload (which equals the message's).
    pub(super) fn of_payload(&self, payload: &[u8]) -> Option<WorkClass> {
        let work = self.work.as_ref()?;
        Some(if work.choose(payload).slow {
            WorkClass::Slow
        } else {
            WorkClass::Fast
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generators_payloads_get_the_share_the_spec_says() {
        let work: WorkSpec = "cpu:10us,10%block:5ms".parse().unwrap();
        let classifier = Classifier::new(Some(work));
        let mut slow = 0;
        for seq in 0..2_000 {
            let mut message = vec![0; 64];
            crate::payload::fill(&mut message, 3, seq);
            let class = classifier.of_payload(&message);
            assert!(class.is_some());
            slow += usize::from(class == Some(WorkClass::Slow));
        }
        // 10% of 2,000, give or take what chance allows.
        assert!((120..=280).contains(&slow), "{slow} slow of 2000");
    }

    #[test]
    fn without_work_nothing_is_classed() {
        let classifier = Classifier::new(None);
        assert_eq!(classifier.of_payload(&[0; 64]), None);
    }
}
