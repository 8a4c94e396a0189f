//! The parent/child tree of a session's spans, built without recursion.
//!
//! Anyone with a key can send a parent chain as deep as they like (a 100,000-span chain is one request), so
//! the tree is an index structure — roots and, per span, the children it shows — that callers walk with an
//! explicit stack. The API's trace answer and the CLI's trace view share it, so both show the same tree.

use std::collections::HashMap;

/// The tree over spans `0..n`: the roots in display order and, per span, the children it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub roots: Vec<usize>,
    pub children: Vec<Vec<usize>>,
}

/// Builds the tree from each span's `(span_id, parent_span_id)`, in the spans' order. A span whose parent is
/// absent (or itself) is a root; spans caught in a parent cycle, which no root reaches, are also shown as
/// roots rather than silently dropped. Each span appears exactly once: under the parent that reached it in a
/// walk from the roots, children in the spans' order. With duplicate ids the first span holds the id.
pub fn build<'a>(links: &[(&'a str, Option<&'a str>)]) -> Tree {
    let n = links.len();
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(n);
    for (i, (id, _)) in links.iter().enumerate() {
        index.entry(id).or_insert(i);
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut roots = Vec::new();
    for (i, (_, parent)) in links.iter().enumerate() {
        match parent.and_then(|p| index.get(p)).copied() {
            Some(parent) if parent != i => children[parent].push(i),
            _ => roots.push(i),
        }
    }
    // Walk from the roots; then spans no root reached (cycles) become roots themselves. A child is shown under
    // its parent only when the walk reached it from there (in a cycle, the edge back to the walk's start is not).
    let mut shown: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut visited = vec![false; n];
    let mut all_roots = Vec::new();
    let mut walk = |start: usize, visited: &mut Vec<bool>| {
        let mut stack = vec![start];
        visited[start] = true;
        while let Some(p) = stack.pop() {
            for &c in &children[p] {
                if !visited[c] {
                    visited[c] = true;
                    shown[p].push(c);
                    stack.push(c);
                }
            }
        }
    };
    for &r in &roots {
        all_roots.push(r);
        walk(r, &mut visited);
    }
    for i in 0..n {
        if !visited[i] {
            all_roots.push(i);
            walk(i, &mut visited);
        }
    }
    Tree { roots: all_roots, children: shown }
}

/// One step of a depth-first walk of a [`Tree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Enter a span at `depth` (roots are at 0); `last` is whether it is its parent's (or the roots') last one.
    Enter { node: usize, depth: usize, last: bool },
    /// Leave the span entered most recently and not yet left.
    Leave { node: usize },
}

impl Tree {
    /// Walks the tree depth-first in display order with an explicit stack, calling `f` on each step.
    pub fn walk<E>(&self, mut f: impl FnMut(Step) -> Result<(), E>) -> Result<(), E> {
        // (children being listed, next index, the span they belong to).
        let mut stack: Vec<(&[usize], usize, Option<usize>)> = vec![(&self.roots, 0, None)];
        while let Some(top) = stack.last_mut() {
            let (kids, next) = (top.0, top.1);
            match kids.get(next) {
                Some(&node) => {
                    top.1 += 1;
                    f(Step::Enter { node, depth: stack.len() - 1, last: next + 1 == kids.len() })?;
                    stack.push((&self.children[node], 0, Some(node)));
                }
                None => {
                    if let Some((_, _, Some(node))) = stack.pop() {
                        f(Step::Leave { node })?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_children_and_cycles() {
        // 0 root; 1 under 0; 2 under 1; 3 and 4 form a cycle; 5 has a missing parent; 6 is its own parent.
        let links = [
            ("a", None),
            ("b", Some("a")),
            ("c", Some("b")),
            ("d", Some("e")),
            ("e", Some("d")),
            ("f", Some("zz")),
            ("g", Some("g")),
        ];
        let t = build(&links);
        assert_eq!(t.roots, vec![0, 5, 6, 3]);
        assert_eq!(t.children[0], vec![1]);
        assert_eq!(t.children[1], vec![2]);
        assert_eq!(t.children[3], vec![4]);
        assert!(t.children[4].is_empty(), "the edge back to the cycle's start is not shown");
    }

    #[test]
    fn a_million_deep_chain_walks_without_recursion() {
        let ids: Vec<String> = (0..1_000_000).map(|i| i.to_string()).collect();
        let links: Vec<(&str, Option<&str>)> =
            ids.iter().enumerate().map(|(i, id)| (id.as_str(), i.checked_sub(1).map(|p| ids[p].as_str()))).collect();
        let t = build(&links);
        let (mut entered, mut deepest, mut left) = (0, 0, 0);
        t.walk::<()>(|s| {
            match s {
                Step::Enter { depth, .. } => {
                    entered += 1;
                    deepest = deepest.max(depth);
                }
                Step::Leave { .. } => left += 1,
            }
            Ok(())
        })
        .unwrap();
        assert_eq!((entered, left, deepest), (1_000_000, 1_000_000, 999_999));
    }
}
