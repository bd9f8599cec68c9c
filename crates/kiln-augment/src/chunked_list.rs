//! A list of words with positional reads and inserts in `O(log n)` amortized: chunks of at
//! most [`MAX_CHUNK`] words, and a Fenwick tree over their lengths to find the chunk of a
//! position. EDA's random insertion reads a random word of the growing line and inserts at a
//! random position; on a `Vec` each insert moves the tail, which makes a long line quadratic.

/// Words per chunk before it splits in two.
const MAX_CHUNK: usize = 512;

/// The words, in order, in chunks.
#[derive(Debug, Clone)]
pub struct ChunkedList<T> {
    chunks: Vec<Vec<T>>,
    /// Fenwick tree (1-based) over `chunks[i].len()`.
    tree: Vec<usize>,
    len: usize,
}

impl<T> ChunkedList<T> {
    /// The list of `items`, in order.
    pub fn from_vec(items: Vec<T>) -> Self {
        let len = items.len();
        let mut chunks = Vec::with_capacity(len / (MAX_CHUNK / 2) + 1);
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            chunks.push(items.by_ref().take(MAX_CHUNK / 2).collect());
        }
        if chunks.is_empty() {
            chunks.push(Vec::new());
        }
        let mut list = Self {
            chunks,
            tree: Vec::new(),
            len,
        };
        list.rebuild();
        list
    }

    /// Items in the list.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn rebuild(&mut self) {
        let n = self.chunks.len();
        self.tree = vec![0; n + 1];
        for (i, chunk) in self.chunks.iter().enumerate() {
            let mut j = i + 1;
            while j <= n {
                self.tree[j] += chunk.len();
                j += j & j.wrapping_neg();
            }
        }
    }

    fn add(&mut self, chunk: usize, delta: usize) {
        let mut j = chunk + 1;
        while j < self.tree.len() {
            self.tree[j] += delta;
            j += j & j.wrapping_neg();
        }
    }

    /// The chunk holding position `index` (`index < len`) and the offset in it; for
    /// `index == len`, the end of the last chunk.
    fn locate(&self, index: usize) -> (usize, usize) {
        let n = self.chunks.len();
        if index >= self.len {
            return (n - 1, self.chunks[n - 1].len());
        }
        // Largest prefix of whole chunks holding at most `index` items.
        let (mut position, mut remaining) = (0, index);
        let mut step = n.next_power_of_two();
        while step > 0 {
            let next = position + step;
            if next <= n && self.tree[next] <= remaining {
                position = next;
                remaining -= self.tree[next];
            }
            step >>= 1;
        }
        (position, remaining)
    }

    /// The item at `index`.
    ///
    /// Panics if `index >= len`, as slice indexing does.
    pub fn get(&self, index: usize) -> &T {
        assert!(
            index < self.len,
            "index {index} out of a list of {}",
            self.len
        );
        let (chunk, offset) = self.locate(index);
        &self.chunks[chunk][offset]
    }

    /// Inserts `item` at `index` (`index <= len`), shifting the rest right, as `Vec::insert`.
    pub fn insert(&mut self, index: usize, item: T) {
        assert!(
            index <= self.len,
            "insert at {index} into a list of {}",
            self.len
        );
        let (chunk, offset) = self.locate(index);
        self.chunks[chunk].insert(offset, item);
        self.len += 1;
        if self.chunks[chunk].len() > MAX_CHUNK {
            let tail = self.chunks[chunk].split_off(MAX_CHUNK / 2);
            self.chunks.insert(chunk + 1, tail);
            self.rebuild();
        } else {
            self.add(chunk, 1);
        }
    }

    /// The items, in order.
    pub fn into_vec(self) -> Vec<T> {
        self.chunks.into_iter().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_vec() {
        // A deterministic sequence of reads and inserts, checked against Vec.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        for start in [0usize, 1, 7, 300, 2000] {
            let mut reference: Vec<usize> = (0..start).collect();
            let mut list = ChunkedList::from_vec(reference.clone());
            for step in 0..3000 {
                let at = next(reference.len() + 1);
                reference.insert(at, 10_000 + step);
                list.insert(at, 10_000 + step);
                assert_eq!(list.len(), reference.len());
                let read = next(reference.len());
                assert_eq!(list.get(read), &reference[read]);
            }
            assert_eq!(list.into_vec(), reference);
        }
    }
}
