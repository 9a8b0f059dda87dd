//! Bounds-checked access to a frame's bytes. The kernel implements it over the XDP
//! context (every read checked against `data_end`, which is what the verifier needs);
//! userspace implements it over a byte slice. The decoder is written once against it.

pub trait Frame {
    /// Length of the frame as the hook saw it, in bytes.
    fn len(&self) -> usize;

    /// Whether the frame has no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `N` bytes starting at `offset`, or `None` when they are not all in the frame.
    fn read<const N: usize>(&self, offset: usize) -> Option<[u8; N]>;

    #[inline(always)]
    fn u8_at(&self, offset: usize) -> Option<u8> {
        self.read::<1>(offset).map(|[b]| b)
    }

    #[inline(always)]
    fn be16_at(&self, offset: usize) -> Option<u16> {
        self.read::<2>(offset).map(u16::from_be_bytes)
    }
}

impl Frame for [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }

    fn read<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        let end = offset.checked_add(N)?;
        self.get(offset..end)?.try_into().ok()
    }
}
