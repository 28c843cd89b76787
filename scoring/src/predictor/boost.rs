//! Binning of raw feature values and gradient-boosted trees over the bins.
//!
//! Every raw column is cut into at most [`MAX_BINS`] bins once, before
//! training: numbers at their quantiles (so only the order of values
//! matters: heavy tails, scaling and monotone transforms change nothing),
//! category codes one bin per common level with the rare ones pooled, and
//! bin 0 for a missing value, so "missing" is learnt like any other value
//! instead of being imputed. Trees then split on bins: a number by a
//! threshold with the missing values sent to the better side, a category by
//! the set of levels whose smoothed won rate is highest (the ordering trick
//! of LightGBM, equivalent to a target encoding recomputed in every node on
//! that node's rows only).
//!
//! Boosting is Newton boosting of the log-loss with shrinkage, an L2 penalty
//! on leaf values and early stopping on the validation rows. Rows carry
//! weights (recency). Histograms are built for the smaller child only and
//! the larger one is the parent's minus it; large data sets are row-sampled
//! per tree, which bounds the training time and regularises.

use serde::{Deserialize, Serialize};

/// Bins a column may have, bin 0 (missing) included.
pub const MAX_BINS: usize = 64;

/// How one raw column maps to bins. Bin 0 is "missing".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Binning {
    /// A number: bin `1 + k` where `k` counts the edges strictly below
    /// the value.
    Numeric {
        /// Increasing cut points.
        edges: Vec<f64>,
    },
    /// A category code (the index of a level of the feature): `bins[code]`,
    /// and `other` for a code beyond `bins` (a level unseen in training or
    /// pooled as rare).
    Levels {
        /// Bin of each code.
        bins: Vec<u8>,
        /// Bin of the pooled rare and unseen levels.
        other: u8,
    },
}

impl Binning {
    /// The bin of a raw value (NaN is missing).
    #[inline]
    pub fn bin(&self, x: f64) -> u8 {
        if x.is_nan() {
            return 0;
        }
        match self {
            Binning::Numeric { edges } => {
                let k = edges.partition_point(|e| *e < x);
                u8::try_from(k + 1).unwrap_or(u8::MAX)
            }
            Binning::Levels { bins, other } => {
                if x >= 0.0 && x.fract() == 0.0 {
                    bins.get(x as usize).copied().unwrap_or(*other)
                } else {
                    *other
                }
            }
        }
    }

    /// Number of bins, missing included.
    pub fn count(&self) -> usize {
        match self {
            Binning::Numeric { edges } => edges.len() + 2,
            Binning::Levels { bins, other } => {
                bins.iter()
                    .copied()
                    .chain([*other])
                    .max()
                    .map_or(1, usize::from)
                    + 1
            }
        }
    }

    /// Whether splits order the bins by won rate rather than by value.
    pub fn is_categorical(&self) -> bool {
        matches!(self, Binning::Levels { .. })
    }

    /// Quantile cut points of the finite values of a column: at most
    /// `MAX_BINS - 2` edges, between distinct values only.
    pub fn numeric(values: &mut [f64]) -> Self {
        values.sort_by(f64::total_cmp);
        let mut distinct: Vec<(f64, usize)> = Vec::new();
        for &v in values.iter() {
            match distinct.last_mut() {
                Some((last, count)) if *last == v => *count += 1,
                _ => distinct.push((v, 1)),
            }
        }
        let max_edges = MAX_BINS - 2;
        let mut edges = Vec::new();
        if distinct.len() <= max_edges + 1 {
            for w in distinct.windows(2) {
                if let [(a, _), (b, _)] = w {
                    edges.push(a + (b - a) / 2.0);
                }
            }
        } else {
            // Walk the distinct values, cutting after every n/(edges+1) rows.
            let n = values.len();
            let per_bin = n as f64 / (max_edges + 1) as f64;
            let mut seen = 0usize;
            let mut next = per_bin;
            for w in distinct.windows(2) {
                if let [(a, count), (b, _)] = w {
                    seen += count;
                    if seen as f64 >= next {
                        edges.push(a + (b - a) / 2.0);
                        while next <= seen as f64 {
                            next += per_bin;
                        }
                    }
                }
            }
        }
        Binning::Numeric { edges }
    }

    /// Bins for category codes `0..levels`: each level with a weight of at
    /// least `min_weight` gets its own bin (the heaviest first, up to the bin
    /// limit); the others share one bin with unseen levels. `weight[code]`
    /// is the level's training weight.
    pub fn levels(weight: &[f64], min_weight: f64) -> Self {
        let mut order: Vec<usize> = (0..weight.len())
            .filter(|&c| weight.get(c).copied().unwrap_or(0.0) >= min_weight)
            .collect();
        order.sort_by(|&a, &b| {
            let (wa, wb) = (
                weight.get(a).copied().unwrap_or(0.0),
                weight.get(b).copied().unwrap_or(0.0),
            );
            wb.total_cmp(&wa).then(a.cmp(&b))
        });
        order.truncate(MAX_BINS - 2);
        let other = u8::try_from(order.len() + 1).unwrap_or(u8::MAX);
        let mut bins = vec![other; weight.len()];
        for (k, &code) in order.iter().enumerate() {
            if let Some(b) = bins.get_mut(code) {
                *b = u8::try_from(k + 1).unwrap_or(other);
            }
        }
        Binning::Levels { bins, other }
    }
}

/// A set of bins, as a bit mask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BinSet([u64; MAX_BINS / 64]);

impl BinSet {
    /// Whether bin `b` is in the set.
    #[inline]
    pub fn contains(&self, b: u8) -> bool {
        let b = usize::from(b);
        self.0
            .get(b / 64)
            .is_some_and(|word| (word >> (b % 64)) & 1 == 1)
    }

    fn insert(&mut self, b: usize) {
        if let Some(word) = self.0.get_mut(b / 64) {
            *word |= 1 << (b % 64);
        }
    }

    fn bins(&self) -> Vec<u8> {
        (0..MAX_BINS)
            .filter_map(|b| u8::try_from(b).ok())
            .filter(|b| self.contains(*b))
            .collect()
    }
}

/// One tree node: a split, or a leaf when `feature` is `None`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "NodeJson", into = "NodeJson")]
pub struct Node {
    /// Column split on.
    pub feature: Option<u32>,
    /// Bins that go left.
    pub left_bins: BinSet,
    /// Index of the left child in the tree.
    pub left: u32,
    /// Index of the right child.
    pub right: u32,
    /// Log-odds this node adds (a leaf), or would add were it a leaf (an
    /// inner node: used to share the prediction out between features).
    pub value: f64,
}

/// The stored form of a [`Node`]: the bins going left as a list.
#[derive(Serialize, Deserialize)]
struct NodeJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    l: Vec<u8>,
    #[serde(default, skip_serializing_if = "is_zero")]
    a: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    b: u32,
    v: f64,
}

fn is_zero(x: &u32) -> bool {
    *x == 0
}

impl From<NodeJson> for Node {
    fn from(j: NodeJson) -> Self {
        let mut left_bins = BinSet::default();
        for b in j.l {
            left_bins.insert(usize::from(b));
        }
        Node {
            feature: j.f,
            left_bins,
            left: j.a,
            right: j.b,
            value: j.v,
        }
    }
}

impl From<Node> for NodeJson {
    fn from(n: Node) -> Self {
        NodeJson {
            f: n.feature,
            l: if n.feature.is_some() {
                n.left_bins.bins()
            } else {
                Vec::new()
            },
            a: n.left,
            b: n.right,
            v: n.value,
        }
    }
}

/// A regression tree over bins; node 0 is the root.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tree {
    /// The nodes.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// The leaf value for a row of bins (`bin(j)` gives column j's bin).
    #[inline]
    pub fn predict(&self, bin: impl Fn(usize) -> u8) -> f64 {
        let mut i = 0usize;
        // A tree is finite and children come after parents, so this ends;
        // the step bound guards against a corrupted stored tree.
        for _ in 0..=self.nodes.len() {
            let Some(node) = self.nodes.get(i) else {
                return 0.0;
            };
            match node.feature {
                None => return node.value,
                Some(f) => {
                    i = if node.left_bins.contains(bin(f as usize)) {
                        node.left as usize
                    } else {
                        node.right as usize
                    };
                }
            }
        }
        0.0
    }

    /// Adds each split's change of value along the row's path to its
    /// feature's entry of `effects` (Saabas' attribution): the root value
    /// plus the effects sum to the leaf value.
    pub fn attribute(&self, bin: impl Fn(usize) -> u8, effects: &mut [f64]) {
        let mut i = 0usize;
        for _ in 0..=self.nodes.len() {
            let Some(node) = self.nodes.get(i) else {
                return;
            };
            let Some(f) = node.feature else {
                return;
            };
            let next = if node.left_bins.contains(bin(f as usize)) {
                node.left as usize
            } else {
                node.right as usize
            };
            let Some(child) = self.nodes.get(next) else {
                return;
            };
            if let Some(e) = effects.get_mut(f as usize) {
                *e += child.value - node.value;
            }
            i = next;
        }
    }

    /// The root's value: the tree's contribution for an average row.
    pub fn root_value(&self) -> f64 {
        self.nodes.first().map_or(0.0, |n| n.value)
    }
}

/// Column-major bins of the training rows.
pub struct Binned {
    /// `cols[j][i]`: row i's bin in column j.
    pub cols: Vec<Vec<u8>>,
    /// Bins per column.
    pub counts: Vec<usize>,
    /// Whether a column is categorical.
    pub categorical: Vec<bool>,
}

impl Binned {
    /// Bins `n` rows of `p` raw values.
    pub fn new(binnings: &[Binning], rows: &[f64], n: usize) -> Self {
        let p = binnings.len();
        let mut cols = vec![Vec::with_capacity(n); p];
        for row in rows.chunks_exact(p.max(1)).take(n) {
            for ((col, b), &x) in cols.iter_mut().zip(binnings).zip(row) {
                col.push(b.bin(x));
            }
        }
        Self {
            cols,
            counts: binnings.iter().map(Binning::count).collect(),
            categorical: binnings.iter().map(Binning::is_categorical).collect(),
        }
    }
}

/// Tree-growing and boosting settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Depth of each tree (1: an additive model of the features).
    pub depth: u32,
    /// Shrinkage of each tree.
    pub learning_rate: f64,
    /// L2 penalty on leaf values, in units of hessian (≈ rows·p·(1−p)).
    pub lambda: f64,
    /// Least hessian in a child.
    pub min_hessian: f64,
    /// Smoothing of a category's won rate when ordering levels.
    pub category_smoothing: f64,
    /// Most trees.
    pub max_trees: usize,
    /// Rounds without improvement on the validation rows before stopping.
    pub patience: usize,
    /// Most rows a tree is grown on (a deterministic sample of them).
    pub sample_rows: usize,
}

/// The outcome of boosting.
pub struct Boosted {
    /// The trees kept (up to the best validation round).
    pub trees: Vec<Tree>,
    /// Validation log-loss at the best round (NaN without validation rows).
    pub best_loss: f64,
}

#[derive(Clone, Copy, Default)]
struct Cell {
    g: f64,
    h: f64,
}

/// Boosts trees on rows `fit` (indices into `binned`), starting from
/// `margin` (per row, all rows; updated in place for every row in `fit`
/// and `valid`), stopping early on the calibrated log-loss of `valid`.
#[allow(clippy::too_many_arguments)]
pub fn boost(
    binned: &Binned,
    labels: &[bool],
    weights: &[f64],
    margin: &mut [f64],
    fit: &[u32],
    valid: &[u32],
    params: &Params,
    seed: u64,
) -> Boosted {
    let n = labels.len();
    let mut grad = vec![0.0; n];
    let mut hess = vec![0.0; n];
    let mut trees: Vec<Tree> = Vec::new();
    let mut platt = (1.0, 0.0);
    let mut best_loss = valid_loss(labels, margin, valid, &mut platt, 8);
    let mut best_round = 0usize;
    let mut rng = seed | 1;
    let mut sample: Vec<u32> = Vec::with_capacity(fit.len().min(params.sample_rows));
    for round in 0..params.max_trees {
        sample.clear();
        if fit.len() > params.sample_rows {
            // Bernoulli sampling keeps the rows in order (cache friendly).
            let keep = params.sample_rows as f64 / fit.len() as f64;
            for &i in fit {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                if ((rng >> 11) as f64) / ((1u64 << 53) as f64) < keep {
                    sample.push(i);
                }
            }
        } else {
            sample.extend_from_slice(fit);
        }
        // Gradients are needed on the sampled rows only.
        for &i in &sample {
            let i = i as usize;
            if let (Some(g), Some(h), Some(&m), Some(&y), Some(&w)) = (
                grad.get_mut(i),
                hess.get_mut(i),
                margin.get(i),
                labels.get(i),
                weights.get(i),
            ) {
                let p = sigmoid(m);
                *g = w * (p - f64::from(u8::from(y)));
                *h = w * (p * (1.0 - p)).max(1e-6);
            }
        }
        let grower = Grower {
            binned,
            params,
            grad: &grad,
            hess: &hess,
        };
        let tree = grower.grow(&mut sample);
        if tree.nodes.len() <= 1 {
            // No split is worth making any more.
            break;
        }
        add_tree(&tree, binned, fit, margin, 1.0);
        add_tree(&tree, binned, valid, margin, 1.0);
        trees.push(tree);
        if !valid.is_empty() {
            let loss = valid_loss(labels, margin, valid, &mut platt, 1);
            if loss < best_loss - 1e-9 {
                best_loss = loss;
                best_round = round + 1;
            } else if round + 1 - best_round >= params.patience {
                break;
            }
        } else {
            best_round = round + 1;
        }
    }
    // Take back the trees past the best round.
    for tree in trees.iter().skip(best_round) {
        add_tree(tree, binned, fit, margin, -1.0);
        add_tree(tree, binned, valid, margin, -1.0);
    }
    trees.truncate(best_round);
    Boosted { trees, best_loss }
}

/// Adds `sign ×` the tree's value to the margin of each of `rows`.
fn add_tree(tree: &Tree, binned: &Binned, rows: &[u32], margin: &mut [f64], sign: f64) {
    // A stump (the common case of an additive model) is a table lookup.
    if let [root, left, right] = tree.nodes.as_slice()
        && let Some(f) = root.feature
        && let Some(col) = binned.cols.get(f as usize)
    {
        let mut table = [0.0; MAX_BINS];
        for (b, t) in table.iter_mut().enumerate() {
            let goes_left = u8::try_from(b).is_ok_and(|b| root.left_bins.contains(b));
            *t = sign * if goes_left { left.value } else { right.value };
        }
        for &i in rows {
            let i = i as usize;
            if let (Some(m), Some(&b)) = (margin.get_mut(i), col.get(i)) {
                *m += table.get(usize::from(b)).copied().unwrap_or(0.0);
            }
        }
        return;
    }
    for &i in rows {
        let i = i as usize;
        let v = tree.predict(|j| {
            binned
                .cols
                .get(j)
                .and_then(|c| c.get(i))
                .copied()
                .unwrap_or(0)
        });
        if let Some(m) = margin.get_mut(i) {
            *m += sign * v;
        }
    }
}

/// Mean log-loss of `rows` after the best Platt scaling `a·m + b` of their
/// margins. Judging the ranking and shape, not the level, keeps a shift of
/// the won rate between the training and the validation rows (drift,
/// which the calibration follows) from stopping the boosting at once.
/// `platt` is the scaling to start from (the previous round's, nearly
/// right as trees change the margins little) and is updated by `steps`
/// Newton steps.
fn valid_loss(
    labels: &[bool],
    margin: &[f64],
    rows: &[u32],
    platt: &mut (f64, f64),
    steps: usize,
) -> f64 {
    if rows.is_empty() {
        return f64::NAN;
    }
    let (mut a, mut b) = *platt;
    for _ in 0..steps {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
        for &i in rows {
            let i = i as usize;
            if let (Some(&y), Some(&m)) = (labels.get(i), margin.get(i)) {
                let p = sigmoid(a * m + b);
                let r = p - f64::from(u8::from(y));
                let w = (p * (1.0 - p)).max(1e-12);
                ga += r * m;
                gb += r;
                haa += w * m * m;
                hab += w * m;
                hbb += w;
            }
        }
        let det = haa * hbb - hab * hab;
        if !(det.is_finite() && det > 1e-12) {
            break;
        }
        a = (a - (hbb * ga - hab * gb) / det).clamp(0.01, 10.0);
        b = (b - (haa * gb - hab * ga) / det).clamp(-20.0, 20.0);
    }
    *platt = (a, b);
    let mut loss = 0.0;
    for &i in rows {
        let i = i as usize;
        if let (Some(&y), Some(&m)) = (labels.get(i), margin.get(i)) {
            let z = a * m + b;
            loss += softplus(z) - if y { z } else { 0.0 };
        }
    }
    loss / rows.len() as f64
}

struct Grower<'a> {
    binned: &'a Binned,
    params: &'a Params,
    grad: &'a [f64],
    hess: &'a [f64],
}

struct Split {
    feature: usize,
    left: BinSet,
    gain: f64,
    /// Gradient and hessian sums of the left side.
    gl: f64,
    hl: f64,
}

impl Grower<'_> {
    fn grow(&self, rows: &mut [u32]) -> Tree {
        let mut tree = Tree::default();
        let hist = self.histogram(rows);
        let (g, h) = hist
            .first()
            .map(|c| c.iter().fold((0.0, 0.0), |(g, h), x| (g + x.g, h + x.h)))
            .unwrap_or((0.0, 0.0));
        self.node(&mut tree, rows, Some(hist), g, h, 0);
        tree
    }

    fn histogram(&self, rows: &[u32]) -> Vec<Vec<Cell>> {
        let mut hist: Vec<Vec<Cell>> = self
            .binned
            .counts
            .iter()
            .map(|&c| vec![Cell::default(); c])
            .collect();
        for (h, col) in hist.iter_mut().zip(&self.binned.cols) {
            for &i in rows {
                let i = i as usize;
                if let (Some(&b), Some(&g), Some(&hs)) =
                    (col.get(i), self.grad.get(i), self.hess.get(i))
                    && let Some(cell) = h.get_mut(usize::from(b))
                {
                    cell.g += g;
                    cell.h += hs;
                }
            }
        }
        hist
    }

    /// Grows the subtree of `rows` (gradient sum `g`, hessian sum `h`, and
    /// histogram `hist` unless it is to be a leaf) and returns its node
    /// index.
    fn node(
        &self,
        tree: &mut Tree,
        rows: &mut [u32],
        hist: Option<Vec<Vec<Cell>>>,
        g: f64,
        h: f64,
        depth: u32,
    ) -> u32 {
        let value = -g / (h + self.params.lambda) * self.params.learning_rate;
        let index = u32::try_from(tree.nodes.len()).unwrap_or(u32::MAX);
        tree.nodes.push(Node {
            feature: None,
            left_bins: BinSet::default(),
            left: 0,
            right: 0,
            value,
        });
        let Some(hist) = hist else {
            return index;
        };
        if depth >= self.params.depth || h < 2.0 * self.params.min_hessian {
            return index;
        }
        let Some(split) = self.best_split(&hist, g, h) else {
            return index;
        };
        let Some(col) = self.binned.cols.get(split.feature) else {
            return index;
        };
        // Partition rows in place: left first.
        let mut k = 0;
        for r in 0..rows.len() {
            let i = rows.get(r).copied().unwrap_or(0) as usize;
            if split.left.contains(col.get(i).copied().unwrap_or(0)) {
                rows.swap(k, r);
                k += 1;
            }
        }
        let (left_rows, right_rows) = rows.split_at_mut(k);
        // Children at the last level are leaves and need no histogram.
        // Otherwise the smaller child's histogram is built and the larger's
        // is the parent's minus it.
        let (left_hist, right_hist) = if depth + 1 >= self.params.depth {
            (None, None)
        } else {
            let left_small = left_rows.len() <= right_rows.len();
            let small_hist = self.histogram(if left_small { left_rows } else { right_rows });
            let mut large = hist;
            for (lc, sc) in large.iter_mut().zip(&small_hist) {
                for (l, s) in lc.iter_mut().zip(sc) {
                    l.g -= s.g;
                    l.h -= s.h;
                }
            }
            if left_small {
                (Some(small_hist), Some(large))
            } else {
                (Some(large), Some(small_hist))
            }
        };
        let left = self.node(tree, left_rows, left_hist, split.gl, split.hl, depth + 1);
        let right = self.node(
            tree,
            right_rows,
            right_hist,
            g - split.gl,
            h - split.hl,
            depth + 1,
        );
        if let Some(node) = tree.nodes.get_mut(index as usize) {
            node.feature = u32::try_from(split.feature).ok();
            node.left_bins = split.left;
            node.left = left;
            node.right = right;
        }
        index
    }

    fn best_split(&self, hist: &[Vec<Cell>], g: f64, h: f64) -> Option<Split> {
        let lambda = self.params.lambda;
        let min_h = self.params.min_hessian;
        let parent = g * g / (h + lambda);
        let mut best: Option<Split> = None;
        let mut order: Vec<usize> = Vec::with_capacity(MAX_BINS);
        for (feature, cells) in hist.iter().enumerate() {
            let categorical = self
                .binned
                .categorical
                .get(feature)
                .copied()
                .unwrap_or(false);
            let missing = cells.first().copied().unwrap_or_default();
            order.clear();
            if categorical {
                // Levels (missing included) by smoothed mean gradient: the
                // best split is a prefix of this order.
                let s = self.params.category_smoothing;
                order.extend((0..cells.len()).filter(|&b| cells.get(b).is_some_and(|c| c.h > 0.0)));
                order.sort_by(|&a, &b| {
                    let key = |k: usize| cells.get(k).map_or(0.0, |c| c.g / (c.h + s));
                    key(a).total_cmp(&key(b)).then(a.cmp(&b))
                });
            } else {
                order.extend(1..cells.len());
            }
            // Numbers try missing on the left and on the right.
            let missing_sides: &[bool] = if categorical || missing.h <= 0.0 {
                &[false]
            } else {
                &[true, false]
            };
            for &missing_left in missing_sides {
                let (mut gl, mut hl) = if missing_left {
                    (missing.g, missing.h)
                } else {
                    (0.0, 0.0)
                };
                for (k, &b) in order.iter().enumerate().take(order.len().saturating_sub(1)) {
                    let Some(c) = cells.get(b) else { continue };
                    gl += c.g;
                    hl += c.h;
                    let (gr, hr) = (g - gl, h - hl);
                    if hl < min_h || hr < min_h {
                        continue;
                    }
                    let gain = gl * gl / (hl + lambda) + gr * gr / (hr + lambda) - parent;
                    if gain > best.as_ref().map_or(1e-9, |s| s.gain) {
                        let mut left = BinSet::default();
                        for &lb in order.iter().take(k + 1) {
                            left.insert(lb);
                        }
                        if missing_left {
                            left.insert(0);
                        }
                        best = Some(Split {
                            feature,
                            left,
                            gain,
                            gl,
                            hl,
                        });
                    }
                }
            }
        }
        best
    }
}

/// The logistic function.
#[inline]
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^z)`, computed stably.
#[inline]
pub fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}
