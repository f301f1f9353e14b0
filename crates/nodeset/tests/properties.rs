//! Property tests: expand/fold round trips, set algebra against a plain set
//! model, and no panic on arbitrary input.

use proptest::prelude::*;
use std::collections::BTreeSet;
use swh_deploy_nodeset::NodeSet;

/// One node name: a prefix and 0 to 3 numbers, some zero-padded.
fn name() -> impl Strategy<Value = String> {
    let number = (0u32..25, prop_oneof![Just(0usize), Just(2), Just(3)])
        .prop_map(|(v, pad)| format!("{v:0pad$}"));
    (
        prop_oneof![Just("n"), Just("node"), Just("x"), Just("a-"), Just("db")],
        prop::collection::vec(number, 0..4),
    )
        .prop_map(|(prefix, numbers)| {
            let seps = ["", "c", "s", "-p"];
            let mut s = prefix.to_string();
            for (i, n) in numbers.iter().enumerate() {
                s.push_str(seps[i]);
                s.push_str(n);
            }
            s
        })
}

fn names() -> impl Strategy<Value = BTreeSet<String>> {
    prop::collection::btree_set(name(), 0..40)
}

fn top_level_comma(s: &str) -> bool {
    let mut depth = 0;
    for c in s.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

fn model(ns: &NodeSet) -> BTreeSet<String> {
    ns.iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn expand_then_fold_round_trips(set in names()) {
        let ns = NodeSet::from_names(&set).unwrap();
        prop_assert_eq!(ns.len(), set.len());
        prop_assert_eq!(model(&ns), set.clone());
        let folded = ns.to_string();
        let reparsed = NodeSet::parse(&folded).unwrap();
        prop_assert_eq!(reparsed.to_string(), folded.clone());
        prop_assert_eq!(reparsed.iter().collect::<Vec<_>>(), ns.iter().collect::<Vec<_>>());
        // Expanding then folding the expansion gives the same fold.
        let expanded: Vec<String> = ns.iter().collect();
        let refolded = NodeSet::parse(&expanded.join(",")).unwrap();
        prop_assert_eq!(refolded.to_string(), folded);
        for n in &set {
            prop_assert!(ns.contains(n));
        }
        // The buffered fast path names the same nodes in the same order.
        let mut fast = Vec::new();
        ns.for_each_name(|n| fast.push(n.to_owned()));
        prop_assert_eq!(fast, expanded);
    }

    #[test]
    fn set_operations_follow_the_set_model(a in names(), b in names()) {
        let na = NodeSet::from_names(&a).unwrap();
        let nb = NodeSet::from_names(&b).unwrap();
        let union: BTreeSet<String> = a.union(&b).cloned().collect();
        let inter: BTreeSet<String> = a.intersection(&b).cloned().collect();
        let diff: BTreeSet<String> = a.difference(&b).cloned().collect();
        let xor: BTreeSet<String> = a.symmetric_difference(&b).cloned().collect();
        prop_assert_eq!(model(&na.union(&nb)), union.clone());
        prop_assert_eq!(model(&na.intersection(&nb)), inter.clone());
        prop_assert_eq!(model(&na.difference(&nb)), diff.clone());
        prop_assert_eq!(model(&na.symmetric_difference(&nb)), xor.clone());
        prop_assert_eq!(na.union(&nb).len(), union.len());
        // The same through the expression syntax (operands folded; the
        // right operand must be one term since operators bind left to
        // right).
        if !a.is_empty() && !b.is_empty() && !top_level_comma(&nb.to_string()) {
            for (op, want) in [(",", &union), ("&", &inter), ("!", &diff), ("^", &xor)] {
                let expr = format!("{na}{op}{nb}");
                prop_assert_eq!(&model(&NodeSet::parse(&expr).unwrap()), want, "{}", expr);
            }
        }
        // Laws: commutativity (same folded text), and
        // (A \ B) ∪ (A ∩ B) = A, A ^ B = (A \ B) ∪ (B \ A).
        prop_assert_eq!(na.union(&nb).to_string(), nb.union(&na).to_string());
        prop_assert_eq!(na.intersection(&nb).to_string(), nb.intersection(&na).to_string());
        prop_assert_eq!(na.difference(&nb).union(&na.intersection(&nb)), na.clone());
        prop_assert_eq!(
            na.symmetric_difference(&nb).to_string(),
            na.difference(&nb).union(&nb.difference(&na)).to_string()
        );
        prop_assert!(na.intersection(&nb).is_subset(&na));
    }

    #[test]
    fn never_panics_on_arbitrary_input(s in "([a-c\\[\\],!&^/ @*?%:#-][0-9]{0,3}){0,16}") {
        if let Ok(ns) = NodeSet::parse(&s) {
            let _ = ns.to_string();
            let _ = ns.iter().count();
        }
    }

    #[test]
    fn never_panics_on_any_unicode(s in "\\PC{0,24}") {
        // Digit runs are capped so that no huge range is built.
        prop_assume!(!s.contains(|c: char| c.is_ascii_digit()));
        if let Ok(ns) = NodeSet::parse(&s) {
            let _ = ns.to_string();
        }
    }
}

#[test]
fn from_names_takes_names_literally() {
    let ns = NodeSet::from_names(["node1", "node2", "node10", "saam"]).unwrap();
    assert_eq!(ns.to_string(), "node[1-2,10],saam");
    assert_eq!(ns.len(), 4);
    let odd = NodeSet::from_names(["a[1]"]).unwrap();
    assert_eq!(odd.iter().collect::<Vec<_>>(), vec!["a[1]".to_string()]);
    let err = NodeSet::from_names([""]).unwrap_err();
    assert_eq!(err.to_string(), "Parse error: parse error");
}

#[test]
fn folding_many_names_in_one_pass() {
    // Not a timing assertion (see benches/): checks that a big input is
    // handled in one pass and gives the expected fold.
    let names: Vec<String> = (0..200_000u32)
        .filter(|i| i % 7 != 3)
        .map(|i| format!("node{i}"))
        .collect();
    let ns = NodeSet::from_names(&names).unwrap();
    assert_eq!(ns.len(), names.len());
    assert!(ns.to_string().starts_with("node[0-2,4-9,11-16,"));
}
