//! Which panel a result's line goes in, and its colour there: the model's
//! [`Family`] from the registry (a variant such as `mio+offload4` goes with its model),
//! and one of ten well-separated colours by its place in that family, so no two lines of
//! one panel share a colour and a model keeps its colour on every chart of a run.

use echolab_registry::Family;
use plotters::style::RGBColor;

use crate::variant::Variant;

/// Ten colours far apart in hue and lightness (matplotlib's "tab10"), all dark enough to
/// read as a 2 px line on white.
const TEN: [RGBColor; 10] = [
    RGBColor(31, 119, 180),  // blue
    RGBColor(255, 127, 14),  // orange
    RGBColor(44, 160, 44),   // green
    RGBColor(214, 39, 40),   // red
    RGBColor(148, 103, 189), // purple
    RGBColor(140, 86, 75),   // brown
    RGBColor(227, 119, 194), // pink
    RGBColor(23, 190, 207),  // cyan
    RGBColor(188, 189, 34),  // olive
    RGBColor(127, 127, 127), // grey
];

/// The family of a result's label (`mio`, `mio+offload4`); `None` for a name the
/// registry does not know (an old run's model since removed).
pub(crate) fn family_of(label: &str) -> Option<Family> {
    echolab_registry::find(Variant::parse(label).model).map(|m| m.family())
}

/// The panels, in [`Family::ALL`] order with the unknown last, each with the labels that
/// go in it in the order given.
pub(crate) fn by_family<'a>(
    labels: impl IntoIterator<Item = &'a str>,
) -> Vec<(Option<Family>, Vec<&'a str>)> {
    let mut panels: Vec<(Option<Family>, Vec<&'a str>)> = Family::ALL
        .iter()
        .map(|f| Some(*f))
        .chain([None])
        .map(|f| (f, Vec::new()))
        .collect();
    for label in labels {
        let family = family_of(label);
        if let Some((_, members)) = panels.iter_mut().find(|(f, _)| *f == family) {
            if !members.contains(&label) {
                members.push(label);
            }
        }
    }
    panels.retain(|(_, members)| !members.is_empty());
    panels
}

/// A panel's title.
pub(crate) fn title(family: Option<Family>) -> &'static str {
    family.map_or("other", Family::label)
}

/// Every label's colour in one run.
#[derive(Debug, Clone)]
pub(crate) struct Colours {
    /// (label, its place in its family).
    places: Vec<(String, usize)>,
}

impl Colours {
    /// Colours for `labels`, in the order they first appear.
    pub(crate) fn new<'a>(labels: impl IntoIterator<Item = &'a str>) -> Colours {
        let labels: Vec<&str> = labels.into_iter().collect();
        let places = by_family(labels)
            .into_iter()
            .flat_map(|(_, members)| {
                members
                    .into_iter()
                    .enumerate()
                    .map(|(i, m)| (m.to_string(), i))
            })
            .collect();
        Colours { places }
    }

    /// The colour of `label` (the first one if the run did not have it).
    pub(crate) fn of(&self, label: &str) -> RGBColor {
        let place = self
            .places
            .iter()
            .find(|(l, _)| l == label)
            .map_or(0, |(_, i)| *i);
        TEN[place % TEN.len()]
    }
}

/// One colour per family, for charts that show every model in one row of bars.
pub(crate) fn family_colour(family: Option<Family>) -> RGBColor {
    let place = Family::ALL
        .iter()
        .position(|f| Some(*f) == family)
        .unwrap_or(Family::ALL.len());
    TEN[place % TEN.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variant_goes_with_its_model_and_an_unknown_name_last() {
        let labels = [
            "mio",
            "threads",
            "mio+offload4",
            "udp-mio",
            "uring",
            "gone",
            "pool+workers100",
        ];
        let panels = by_family(labels);
        let shape: Vec<(Option<Family>, Vec<&str>)> = panels;
        assert_eq!(
            shape,
            [
                (Some(Family::Blocking), vec!["threads", "pool+workers100"]),
                (Some(Family::ReadinessLoops), vec!["mio", "mio+offload4"]),
                (Some(Family::CompletionAndRuntimes), vec!["uring"]),
                (Some(Family::Datagram), vec!["udp-mio"]),
                (None, vec!["gone"]),
            ]
        );
    }

    #[test]
    fn no_two_lines_of_a_panel_share_a_colour() {
        let names: Vec<&str> = echolab_registry::MODELS.iter().map(|m| m.name).collect();
        let mut labels = names.clone();
        labels.extend(["mio+offload4", "reactors+offload4", "pool+workers100"]);
        let colours = Colours::new(labels.iter().copied());
        for (_, members) in by_family(labels.iter().copied()) {
            let mut seen: Vec<RGBColor> = Vec::new();
            for m in members {
                let c = colours.of(m);
                assert!(!seen.contains(&c), "{m} repeats a colour");
                seen.push(c);
            }
        }
    }
}
