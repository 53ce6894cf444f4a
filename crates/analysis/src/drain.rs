//! Drain: online log template mining with a fixed-depth prefix tree, after He,
//! Zhu, Zheng and Lyu, "Drain: An Online Log Parsing Approach with Fixed Depth
//! Tree" (ICWS 2017), with the masking Drain3 added.
//!
//! Each line, masked first ([`crate::log_line::mask`]: numbers, ids, addresses,
//! durations, quoted strings become [`PARAM`]), walks a tree of fixed depth: the
//! first level by its number of tokens, then one level per leading token (up to
//! `depth - 2` of them), a token with a digit in it going down the [`PARAM`]
//! branch (a value the masks missed should not split the tree), as does any token
//! once a node has `max_children` children. The leaf holds the templates
//! (clusters) of lines that got there; the line joins the most similar one,
//! similarity being the share of positions where the template has the line's
//! token (a template's [`PARAM`] counts as no match, and breaks ties in favour of
//! the more general template), if at least `similarity`; the template then has
//! [`PARAM`] wherever the two differ. Otherwise the line starts a template of its
//! own.
//!
//! # Guarantees
//! - Every line added to a template has the template's length, and the template
//!   has that line's masked token or [`PARAM`] at every position.
//! - At most `max_templates` templates are kept; past that, a line that fits none
//!   of them is not classified ([`Drain::add`] returns `None`), so memory stays
//!   bounded whatever a program logs.

use std::collections::HashMap;

pub use crate::log_line::PARAM;

/// How the tree is shaped and when a line joins a template.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DrainConfig {
    /// Levels of the tree, the root and the token-count level included (at least
    /// 3): `depth - 2` leading tokens pick the leaf.
    pub depth: usize,
    /// The least share of equal tokens for a line to join a template (0..=1).
    pub similarity: f64,
    /// Children a node has at most before further tokens share its [`PARAM`] child.
    pub max_children: usize,
    /// Templates kept at most.
    pub max_templates: usize,
}

impl Default for DrainConfig {
    /// Drain3's defaults: depth 4, similarity 0.4, 100 children.
    fn default() -> Self {
        DrainConfig {
            depth: 4,
            similarity: 0.4,
            max_children: 100,
            max_templates: 1000,
        }
    }
}

/// Identifies a template of one [`Drain`].
pub type TemplateId = usize;

/// The miner: add lines, read templates back.
#[derive(Debug, Clone, Default)]
pub struct Drain {
    config: DrainConfig,
    /// The first level: by token count.
    by_length: HashMap<usize, Node>,
    templates: Vec<Vec<String>>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    children: HashMap<String, Node>,
    /// At a leaf: the templates of the lines that got here.
    templates: Vec<TemplateId>,
}

impl Drain {
    pub fn new(config: DrainConfig) -> Drain {
        Drain {
            config: DrainConfig {
                depth: config.depth.max(3),
                ..config
            },
            by_length: HashMap::new(),
            templates: Vec::new(),
        }
    }

    /// Adds one line's text: the template it joined (maybe changed by it) or
    /// started; `None` for an empty line, or when it fits no template and
    /// `max_templates` are kept already.
    pub fn add(&mut self, text: &str) -> Option<TemplateId> {
        let tokens = crate::log_line::mask(text);
        if tokens.is_empty() {
            return None;
        }
        let config = self.config;
        let leaf = leaf_for(
            self.by_length.entry(tokens.len()).or_default(),
            &tokens,
            &config,
        );
        if let Some(id) = best_match(&self.templates, &leaf.templates, &tokens, config.similarity) {
            merge(&mut self.templates[id], &tokens);
            return Some(id);
        }
        if self.templates.len() >= config.max_templates {
            return None;
        }
        let id = self.templates.len();
        self.templates.push(tokens);
        leaf.templates.push(id);
        Some(id)
    }

    /// A template as text, its tokens joined by spaces.
    pub fn template(&self, id: TemplateId) -> Option<String> {
        self.templates.get(id).map(|t| t.join(" "))
    }

    /// How many templates there are.
    pub fn len(&self) -> usize {
        self.templates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }
}

/// Walks (and grows) the prefix levels below a token-count node to a leaf.
fn leaf_for<'n>(mut node: &'n mut Node, tokens: &[String], config: &DrainConfig) -> &'n mut Node {
    for token in tokens.iter().take(config.depth - 2) {
        let key = if token.bytes().any(|b| b.is_ascii_digit())
            || (!node.children.contains_key(token.as_str())
                && node.children.len() + 1 >= config.max_children)
        {
            PARAM
        } else {
            token.as_str()
        };
        node = node.children.entry(key.to_owned()).or_default();
    }
    node
}

/// The most similar template of `candidates`, if similar enough.
fn best_match(
    templates: &[Vec<String>],
    candidates: &[TemplateId],
    tokens: &[String],
    threshold: f64,
) -> Option<TemplateId> {
    let mut best: Option<(f64, usize, TemplateId)> = None;
    for &id in candidates {
        let (similarity, params) = similarity(&templates[id], tokens);
        let better = best.is_none_or(|(s, p, _)| similarity > s || (similarity == s && params > p));
        if better {
            best = Some((similarity, params, id));
        }
    }
    best.filter(|(s, _, _)| *s >= threshold)
        .map(|(_, _, id)| id)
}

/// The share of positions where `template` has `tokens`' token, and how many
/// [`PARAM`]s it has. Both have the same length (the tree's first level).
fn similarity(template: &[String], tokens: &[String]) -> (f64, usize) {
    let mut equal = 0;
    let mut params = 0;
    for (t, token) in template.iter().zip(tokens) {
        if t == PARAM {
            params += 1;
        } else if t == token {
            equal += 1;
        }
    }
    (equal as f64 / template.len() as f64, params)
}

/// `template` with [`PARAM`] wherever `tokens` differs.
fn merge(template: &mut [String], tokens: &[String]) {
    for (t, token) in template.iter_mut().zip(tokens) {
        if t != token {
            *t = PARAM.to_owned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lines_that_differ_in_values_share_a_template() {
        let mut drain = Drain::default();
        let a = drain.add("connection to db-1 failed after 3 tries");
        let b = drain.add("connection to db-2 failed after 5 tries");
        let c = drain.add("user alice logged in");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            drain.template(a.unwrap()).unwrap(),
            "connection to <*> failed after <*> tries"
        );
        assert_eq!(drain.template(c.unwrap()).unwrap(), "user alice logged in");
    }

    #[test]
    fn dissimilar_lines_of_one_length_stay_apart() {
        let mut drain = Drain::default();
        let a = drain.add("cache warmed in 12ms");
        let b = drain.add("payment declined for cardholder");
        let c = drain.add("cache warmed in 340ms");
        assert_ne!(a, b);
        assert_eq!(a, c);
        assert_eq!(drain.len(), 2);
    }

    #[test]
    fn a_line_whose_leading_token_is_a_value_goes_down_the_param_branch() {
        let mut drain = Drain::default();
        let a = drain.add("user42 not found");
        let b = drain.add("user43 not found");
        assert_eq!(a, b);
        assert_eq!(drain.template(a.unwrap()).unwrap(), "<*> not found");
    }

    #[test]
    fn templates_are_capped() {
        let mut drain = Drain::new(DrainConfig {
            max_templates: 2,
            ..DrainConfig::default()
        });
        assert!(drain.add("alpha beta gamma").is_some());
        assert!(drain.add("one two").is_some());
        assert_eq!(drain.add("something else entirely here"), None);
        assert_eq!(drain.add("alpha beta delta"), Some(0));
        assert_eq!(drain.add("   "), None);
    }

    #[test]
    fn many_children_share_the_param_branch() {
        let mut drain = Drain::new(DrainConfig {
            max_children: 3,
            ..DrainConfig::default()
        });
        for word in ["a", "b", "c", "d", "e"] {
            drain.add(&format!("{word} happened twice"));
        }
        // `a` and `b` got children of their own; the rest met under `<*>`.
        assert_eq!(drain.len(), 3);
    }

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z]{1,6}",
            "[0-9]{1,4}",
            "[0-9]{1,3}ms",
            Just("ERROR".to_owned()),
            Just("db".to_owned()),
        ]
    }

    proptest! {
        #[test]
        fn every_line_fits_its_template(lines in proptest::collection::vec(
            proptest::collection::vec(word(), 1..8), 1..60)) {
            let mut drain = Drain::default();
            let mut added = Vec::new();
            for words in &lines {
                let text = words.join(" ");
                if let Some(id) = drain.add(&text) {
                    added.push((id, crate::log_line::mask(&text)));
                }
            }
            prop_assert_eq!(added.len(), lines.len());
            for (id, tokens) in added {
                let template = &drain.templates[id];
                prop_assert_eq!(template.len(), tokens.len());
                for (t, token) in template.iter().zip(&tokens) {
                    prop_assert!(t == PARAM || t == token, "{t} vs {token}");
                }
            }
        }
    }
}
