//! Which embeddings belong to the same voice: agglomerative clustering with
//! average linkage on cosine similarity (the clustering of pyannote's
//! pipelines and of 3D-Speaker's). Clusters merge, most alike first, while
//! the two most alike are at least `threshold` alike, or while there are
//! more than `max` of them; they never merge below `min`.

use peyk_jobs::transcription::SpeakerCount;

/// Average similarity (cosine of unit vectors) from which two clusters of
/// 1.6 s units are one voice. Measured on the test conversations (README
/// "Speaker labels"): units of one espeak-ng voice are 0.83–0.86 alike on
/// average (0.66 at least), of the two voices 0.22–0.24 (0.40 at most);
/// units of the real jfk.wav recording 0.77 (0.57 at least).
pub const SAME_VOICE: f32 = 0.5;

/// Above this many embeddings, only this many (evenly spaced) are
/// clustered and the rest join the cluster whose mean is nearest: the
/// clustering is cubic in its input.
const MOST_CLUSTERED: usize = 600;

/// A cluster index per embedding (unit vectors), numbered in order of first
/// appearance.
pub fn cluster(embeddings: &[Vec<f32>], count: SpeakerCount, threshold: f32) -> Vec<usize> {
    if embeddings.is_empty() {
        return Vec::new();
    }
    let step = embeddings.len().div_ceil(MOST_CLUSTERED);
    let sample: Vec<&Vec<f32>> = embeddings.iter().step_by(step).collect();
    let sample_labels = agglomerate(&sample, count, threshold);
    let labels = if step == 1 {
        sample_labels
    } else {
        let centroids = centroids(&sample, &sample_labels);
        embeddings.iter().map(|e| nearest(e, &centroids)).collect()
    };
    in_order_of_appearance(&labels)
}

/// The index of the centroid most alike to `embedding`.
pub fn nearest(embedding: &[f32], centroids: &[Vec<f32>]) -> usize {
    (0..centroids.len()).max_by(|&a, &b| dot(embedding, &centroids[a]).total_cmp(&dot(embedding, &centroids[b]))).unwrap_or(0)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn agglomerate(embeddings: &[&Vec<f32>], count: SpeakerCount, threshold: f32) -> Vec<usize> {
    let n = embeddings.len();
    // Average linkage keeps, per pair of live clusters, the sum of its
    // members' pairwise similarities (Lance–Williams: sums add on a merge).
    let mut sums: Vec<Vec<f32>> = (0..n).map(|i| (0..n).map(|j| dot(embeddings[i], embeddings[j])).collect()).collect();
    let mut sizes = vec![1usize; n];
    let mut members: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    let mut live: Vec<usize> = (0..n).collect();
    let min = count.min.max(1);
    let max = count.max.max(min);
    while live.len() > min {
        let mut best: Option<(usize, usize, f32)> = None;
        for (x, &a) in live.iter().enumerate() {
            for &b in &live[x + 1..] {
                let similarity = sums[a][b] / (sizes[a] * sizes[b]) as f32;
                if best.is_none_or(|(_, _, s)| similarity > s) {
                    best = Some((a, b, similarity));
                }
            }
        }
        let Some((a, b, similarity)) = best else { break };
        if similarity < threshold && live.len() <= max {
            break;
        }
        for &c in live.iter().filter(|&&c| c != a && c != b) {
            let joined = sums[a][c] + sums[b][c];
            sums[a][c] = joined;
            sums[c][a] = joined;
        }
        sizes[a] += sizes[b];
        let moved = std::mem::take(&mut members[b]);
        members[a].extend(moved);
        live.retain(|&c| c != b);
    }
    let mut labels = vec![0; n];
    for (label, &cluster) in live.iter().enumerate() {
        for &i in &members[cluster] {
            labels[i] = label;
        }
    }
    labels
}

/// Each cluster's summed embeddings (its direction is all [`nearest`] needs).
pub fn centroids<E: AsRef<[f32]>>(embeddings: &[E], labels: &[usize]) -> Vec<Vec<f32>> {
    let clusters = labels.iter().max().map_or(0, |m| m + 1);
    let dim = embeddings.first().map_or(0, |e| e.as_ref().len());
    let mut sums = vec![vec![0.0f32; dim]; clusters];
    for (e, &label) in embeddings.iter().zip(labels) {
        for (s, v) in sums[label].iter_mut().zip(e.as_ref()) {
            *s += v;
        }
    }
    sums
}

pub fn in_order_of_appearance(labels: &[usize]) -> Vec<usize> {
    let mut order: Vec<usize> = Vec::new();
    labels
        .iter()
        .map(|label| match order.iter().position(|l| l == label) {
            Some(i) => i,
            None => {
                order.push(*label);
                order.len() - 1
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit vector near axis `axis` (of 4), nudged by `wobble`.
    fn voice(axis: usize, wobble: f32) -> Vec<f32> {
        let mut v = [wobble; 4];
        v[axis] = 1.0;
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / norm).collect()
    }

    const ANY: SpeakerCount = SpeakerCount { min: 1, max: 4 };

    #[test]
    fn alike_embeddings_join_and_unlike_ones_stay_apart() {
        let embeddings = vec![voice(1, 0.1), voice(1, 0.2), voice(0, 0.1), voice(1, 0.15), voice(0, 0.2)];
        assert_eq!(cluster(&embeddings, ANY, SAME_VOICE), [0, 0, 1, 0, 1]);
        assert_eq!(cluster(&[voice(2, 0.1)], ANY, SAME_VOICE), [0]);
        assert!(cluster(&[], ANY, SAME_VOICE).is_empty());
    }

    #[test]
    fn the_speaker_count_bounds_the_clusters() {
        let three = vec![voice(0, 0.0), voice(1, 0.0), voice(2, 0.0), voice(0, 0.05)];
        assert_eq!(cluster(&three, ANY, SAME_VOICE), [0, 1, 2, 0]);
        // At most two: the two most alike of the three voices merge.
        let labels = cluster(&three, SpeakerCount { min: 1, max: 2 }, SAME_VOICE);
        assert_eq!(labels.iter().max(), Some(&1));
        assert_eq!(labels[0], labels[3]);
        // At least two, though one voice: the least alike split off.
        let one = vec![voice(0, 0.1), voice(0, 0.12), voice(0, 0.5)];
        assert_eq!(cluster(&one, ANY, SAME_VOICE), [0, 0, 0]);
        assert_eq!(cluster(&one, SpeakerCount { min: 2, max: 4 }, SAME_VOICE), [0, 0, 1]);
    }

    #[test]
    fn long_inputs_are_clustered_on_a_sample_and_the_rest_joins_the_nearest() {
        let embeddings: Vec<Vec<f32>> = (0..1500).map(|i| voice(if (i / 50) % 2 == 0 { 0 } else { 3 }, 0.01 * (i % 7) as f32)).collect();
        let labels = cluster(&embeddings, ANY, SAME_VOICE);
        for (i, label) in labels.iter().enumerate() {
            assert_eq!(*label, (i / 50) % 2, "embedding {i}");
        }
    }
}
