//! Which connections are selected, with the usual click semantics: click
//! selects one, Ctrl/Cmd-click toggles, Shift-click extends a range in the
//! order shown.

use crate::protocol::ConnId;
use std::collections::BTreeSet;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub conns: BTreeSet<ConnId>,
    /// The connection the inspector shows: the last one clicked.
    pub primary: Option<ConnId>,
}

impl Selection {
    /// The selected connections, the primary (inspected) one first.
    pub fn primary_first(&self) -> Vec<ConnId> {
        let rest = self.conns.iter().filter(|&&id| Some(id) != self.primary);
        self.primary.into_iter().chain(rest.copied()).collect()
    }

    pub fn click(&mut self, id: ConnId, toggle: bool, extend: bool, order: &[ConnId]) {
        if extend && let Some(anchor) = self.primary {
            let pos = |c| order.iter().position(|&x| x == c);
            if let (Some(a), Some(b)) = (pos(anchor), pos(id)) {
                let (lo, hi) = (a.min(b), a.max(b));
                if !toggle {
                    self.conns.clear();
                }
                self.conns.extend(&order[lo..=hi]);
                return;
            }
        }
        if toggle {
            if !self.conns.remove(&id) {
                self.conns.insert(id);
                self.primary = Some(id);
            } else if self.primary == Some(id) {
                self.primary = self.conns.iter().next_back().copied();
            }
        } else {
            self.conns.clear();
            self.conns.insert(id);
            self.primary = Some(id);
        }
    }

    pub fn select_only(&mut self, id: ConnId) {
        self.click(id, false, false, &[]);
    }

    pub fn is_selected(&self, id: ConnId) -> bool {
        self.conns.contains(&id)
    }

    /// The targets for an action on `id`: the whole selection if `id` is in
    /// it, otherwise just `id`.
    pub fn targets_for(&self, id: ConnId) -> Vec<ConnId> {
        if self.conns.contains(&id) {
            self.conns.iter().copied().collect()
        } else {
            vec![id]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn click_toggle_and_range() {
        let order: Vec<ConnId> = [5, 3, 9, 1].map(ConnId).to_vec();
        let mut s = Selection::default();
        s.click(ConnId(3), false, false, &order);
        assert_eq!(s.conns, BTreeSet::from([ConnId(3)]));
        s.click(ConnId(1), false, true, &order);
        assert_eq!(s.conns, BTreeSet::from([ConnId(3), ConnId(9), ConnId(1)]));
        s.click(ConnId(9), true, false, &order);
        assert_eq!(s.conns, BTreeSet::from([ConnId(3), ConnId(1)]));
        assert_eq!(s.targets_for(ConnId(3)).len(), 2);
        assert_eq!(s.targets_for(ConnId(5)), vec![ConnId(5)]);
        s.click(ConnId(5), false, false, &order);
        assert_eq!(s.conns, BTreeSet::from([ConnId(5)]));
        assert_eq!(s.primary, Some(ConnId(5)));
    }
}
