//! The matmul tile and its register-tiled microkernel, written once for every SIMD tier.
//!
//! A tier instantiates [`tile`] with its vector type and three sizes: `MR`
//! rows per microkernel call, `NP` panels per call and `VPP` vectors per
//! panel (`NR / LANES`). `MR·NP·VPP` accumulators plus `NP·VPP` weight
//! vectors must fit in the register file.

use std::cell::Cell;

use super::{Activation, CACHE_LINE, KC, MatmulJob, NR, PackedMatrix, Product, Tile, WeightFormat, f32_block_len};
use crate::simd::{self, Simd};

/// Largest `MR` and `NP` any tier uses; [`micro_dispatch`] covers all sizes up to these.
pub(crate) const MAX_MR: usize = 8;
pub(crate) const MAX_NP: usize = 4;

/// Floats per cache line: scratch buffers start on a line, and
/// [`split_lines`] starts each part on one.
pub(crate) const LINE_FLOATS: usize = CACHE_LINE / size_of::<f32>();

/// One cache line of scratch floats. The alignment must be a literal, so it
/// repeats [`CACHE_LINE`], which a compile-time check below compares with it.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Line([f32; LINE_FLOATS]);

const _: () = assert!(align_of::<Line>() == CACHE_LINE && size_of::<Line>() == CACHE_LINE);

thread_local! {
    /// Scratch memory of the tiles that run on this thread, kept between calls.
    static SCRATCH: Cell<Vec<Line>> = const { Cell::new(Vec::new()) };
}

/// A scratch buffer of floats that starts on a cache line, so that vector
/// loads and stores at multiples of [`LINE_FLOATS`] never straddle two lines.
pub(crate) struct Scratch {
    lines: Vec<Line>,
    len: usize,
}

impl std::ops::Deref for Scratch {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        // SAFETY: a Line is LINE_FLOATS floats without padding, and the
        // vector contains at least ceil(len / LINE_FLOATS) lines (see `take_scratch`).
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.len) }
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`, and the vector is borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.len) }
    }
}

/// Takes this thread's scratch buffer as `len` floats, growing it if needed.
pub(crate) fn take_scratch(len: usize) -> Scratch {
    let mut lines = SCRATCH.take();
    let needed = len.div_ceil(LINE_FLOATS);
    if lines.len() < needed {
        lines.resize(needed, Line([0.0; LINE_FLOATS]));
    }
    Scratch { lines, len }
}

/// Returns a buffer taken with [`take_scratch`].
pub(crate) fn return_scratch(buffer: Scratch) {
    SCRATCH.set(buffer.lines);
}

/// Returns the total length of parts of `lengths` floats when each starts on a cache line.
pub(crate) fn lines_len(lengths: &[usize]) -> usize {
    lengths.iter().map(|len| len.next_multiple_of(LINE_FLOATS)).sum()
}

/// Splits `buffer` into parts of `lengths` floats, each starting
/// [`LINE_FLOATS`]-aligned relative to the start of `buffer`.
///
/// # Panics
/// If `buffer` is shorter than [`lines_len`] of `lengths`.
pub(crate) fn split_lines<const N: usize>(buffer: &mut [f32], lengths: [usize; N]) -> [&mut [f32]; N] {
    let mut rest = buffer;
    lengths.map(|len| {
        let (part, tail) = std::mem::take(&mut rest).split_at_mut(len.next_multiple_of(LINE_FLOATS));
        rest = tail;
        &mut part[..len]
    })
}

/// Accumulates one register tile:
/// `acc[i·acc_stride + p·NR + j] (+)= Σ_{kk<kc} x[kk·x_stride + i] · w[p][kk·NR + j]`
/// for `i < MR`, `p < NP`, `j < NR`, starting from zero unless `accumulate`.
///
/// Every accumulator is one fused multiply-add chain in ascending `kk`, so a
/// value does not depend on `MR`, `NP` or its position in the tile.
///
/// `prefetch` requests weights ahead of use (see [`Prefetch`]).
///
/// # Safety
/// The CPU must support `S`'s tier, and `MR <= x_stride`. `x` must have
/// `kc·x_stride` readable floats and each `w[p]` `kc·NR` readable floats.
/// `acc` must have `(MR − 1)·acc_stride + NP·NR` readable and writable floats.
#[inline(always)]
pub(crate) unsafe fn micro<S: Simd, const MR: usize, const NP: usize, const VPP: usize>(
    s: S,
    x: *const f32,
    x_stride: usize,
    w: &[*const f32],
    kc: usize,
    acc: *mut f32,
    acc_stride: usize,
    accumulate: bool,
    prefetch: Prefetch,
) {
    debug_assert_eq!(VPP * S::LANES, NR);
    debug_assert!(w.len() >= NP && MR <= x_stride);
    let mut panels = [std::ptr::null::<f32>(); NP];
    panels.copy_from_slice(&w[..NP]);
    let mut c = [[[s.zero(); VPP]; NP]; MR];
    if accumulate {
        for i in 0..MR {
            for p in 0..NP {
                for v in 0..VPP {
                    // SAFETY: inside `acc` (this function's contract).
                    c[i][p][v] = unsafe { s.load(acc.add(i * acc_stride + p * NR + v * S::LANES)) };
                }
            }
        }
    }
    let mut prefetch_address = prefetch.address;
    // Lines owed, in units of 1/kc line: step kk brings the total issued to
    // floor((kk + 1)·lines / kc).
    let mut prefetch_owed = 0;
    for kk in 0..kc {
        if prefetch.ahead > 0 {
            for p in 0..NP {
                s.prefetch_l1(panels[p] as usize + prefetch.ahead + kk * NR * size_of::<f32>());
            }
        }
        if prefetch.lines > 0 {
            prefetch_owed += prefetch.lines;
            while prefetch_owed >= kc {
                s.prefetch_l2(prefetch_address);
                prefetch_address += CACHE_LINE;
                prefetch_owed -= kc;
            }
        }
        let mut b = [[s.zero(); VPP]; NP];
        for p in 0..NP {
            for v in 0..VPP {
                // SAFETY: row kk < kc of panel p (this function's contract).
                b[p][v] = unsafe { s.load(panels[p].add(kk * NR + v * S::LANES)) };
            }
        }
        for i in 0..MR {
            // SAFETY: kk·x_stride + i < kc·x_stride (this function's contract).
            let a = unsafe { s.broadcast(x.add(kk * x_stride + i)) };
            for p in 0..NP {
                for v in 0..VPP {
                    c[i][p][v] = s.mul_add(a, b[p][v], c[i][p][v]);
                }
            }
        }
    }
    for i in 0..MR {
        for p in 0..NP {
            for v in 0..VPP {
                // SAFETY: inside `acc` (this function's contract).
                unsafe { s.store(acc.add(i * acc_stride + p * NR + v * S::LANES), c[i][p][v]) };
            }
        }
    }
}

/// Weights that a microkernel call requests from memory ahead of use.
#[derive(Clone, Copy, Default)]
pub(crate) struct Prefetch {
    /// When non-zero, step `kk` prefetches into L1 the line `ahead` bytes
    /// past row `kk` of each panel: the call's own weights, a fixed
    /// distance ahead of the loads.
    pub ahead: usize,
    /// First of the cache lines prefetched into L2: weights of a later call
    /// (see [`L2Prefetch`]).
    pub address: usize,
    /// Consecutive cache lines from `address`, spread evenly over the
    /// call's steps; 0 for none.
    pub lines: usize,
}

/// Rows ahead of the loads at which a microkernel call on f32 panels
/// prefetches its own weights into L1 ([`Prefetch::ahead`]): 2 KiB per
/// panel. A forward pass reads each matrix once and nothing keeps it in
/// cache, so without this the first row group of each panel group waits
/// for its weights from memory.
const L1_AHEAD_ROWS: usize = 32;

/// Minimum row groups for which the calls on one group of f32 panels also
/// fetch the next group's weights into L2 ([`L2Prefetch::after_group`]).
/// With fewer, each call would have to fetch more than one line per step,
/// faster than memory delivers, and the calls stall on the requests.
///
/// Measured on one thread with 32 copies of the weights used in turn, so
/// that they come from memory as in a forward pass, against row groups
/// outermost (blocks of 256, the next block fetched into L2). Panels
/// outermost with these prefetches took 8×768×768 from 50 to 78 GFLOP/s,
/// 16×768×3072 from 59 to 74, 32×768×768 from 95 to 126, 64×2304×768 from
/// 107 to 131 and 197×2304×768 from 122 to 137. On two threads they took
/// 16×768×768 from 136 to 162 and 197×2304×768 from 252 to 275.
const L2_PREFETCH_MIN_GROUPS: usize = 3;

/// The weights that a set of microkernel calls fetch into L2 for later
/// calls, spread evenly over the calls, a few lines per step: a burst of
/// prefetches at the start made the matmul slower than none.
///
/// When a tile runs panel groups outermost, the calls of one panel group
/// fetch the next group (see [`L2Prefetch::after_group`]). Otherwise the
/// calls of one reduction block fetch the tile's next block, or after its
/// last block the first block of the panels that follow the tile (see
/// [`L2Prefetch::plan`]).
struct L2Prefetch<'a> {
    /// The matrices whose panels are fetched: the product's one or two.
    matrices: [&'a PackedMatrix; 2],
    /// How many of `matrices` the product has.
    matrix_count: usize,
    /// First panel and row of the fetched block.
    panel0: usize,
    row0: usize,
    /// Panels fetched per matrix.
    panels: usize,
    /// Cache lines per panel of the fetched block.
    lines_per_panel: usize,
    /// Microkernel calls that share the lines.
    calls: usize,
}

impl<'a> L2Prefetch<'a> {
    /// Returns the plan of block `k0..k0 + block_len` of `tile`, or `None`
    /// when nothing follows it in the tile's matrix.
    fn plan(
        first: &'a PackedMatrix,
        second: Option<&'a PackedMatrix>,
        tile: Tile,
        k: usize,
        k0: usize,
        block_len: usize,
        last: bool,
        calls: usize,
    ) -> Option<L2Prefetch<'a>> {
        let (panel0, panels, row0) = if !last {
            (tile.panel0, tile.panels, k0 + block_len)
        } else {
            let panel0 = tile.panel0 + tile.panels;
            let panel_count = first.n().div_ceil(NR);
            if panel0 >= panel_count || k == 0 {
                return None;
            }
            (panel0, tile.panels.min(panel_count - panel0), 0)
        };
        Some(L2Prefetch::rows(first, second, panel0, panels, row0, block_len.min(k - row0), calls))
    }

    /// Returns the plan of the weights read after panel group `panel` (the
    /// tile's panels `panel..panel + np`) of block `k0..k0 + kc`. That is the
    /// next group of the block, else the first group of the tile's next
    /// block, else the first panels after the tile, which the next tile in
    /// order reads first. `None` when nothing follows.
    fn after_group(
        first: &'a PackedMatrix,
        second: Option<&'a PackedMatrix>,
        tile: Tile,
        panel: usize,
        np: usize,
        k: usize,
        k0: usize,
        kc: usize,
        block_len: usize,
        calls: usize,
    ) -> Option<L2Prefetch<'a>> {
        let panel_count = first.n().div_ceil(NR);
        let (panel0, end, row0) = if panel + np < tile.panels {
            (tile.panel0 + panel + np, tile.panel0 + tile.panels, k0)
        } else if k0 + kc < k {
            (tile.panel0, tile.panel0 + tile.panels, k0 + kc)
        } else {
            (tile.panel0 + tile.panels, panel_count, 0)
        };
        if panel0 >= end || k == 0 {
            return None;
        }
        let rows = if row0 == k0 { kc } else { block_len.min(k - row0) };
        Some(L2Prefetch::rows(first, second, panel0, np.min(end - panel0), row0, rows, calls))
    }

    /// Returns the plan of rows `row0..row0 + rows` of panels
    /// `panel0..panel0 + panels` of each matrix, shared by `calls` calls.
    fn rows(
        first: &'a PackedMatrix,
        second: Option<&'a PackedMatrix>,
        panel0: usize,
        panels: usize,
        row0: usize,
        rows: usize,
        calls: usize,
    ) -> L2Prefetch<'a> {
        let format = first.format();
        let rows = rows.next_multiple_of(format.k_group());
        let lines_per_panel = (rows * NR * format.bytes_per_weight()).div_ceil(CACHE_LINE);
        let matrices = [first, second.unwrap_or(first)];
        let matrix_count = if second.is_some() { 2 } else { 1 };
        L2Prefetch { matrices, matrix_count, panel0, row0, panels, lines_per_panel, calls }
    }

    /// Returns the L2 part of the [`Prefetch`] of call `call`.
    fn range(&self, call: usize) -> Prefetch {
        let total = self.matrix_count * self.panels * self.lines_per_panel;
        let line = call * total / self.calls;
        let count = ((call + 1) * total / self.calls - line).max(1);
        let panel = line / self.lines_per_panel;
        let matrix = self.matrices[(panel / self.panels).min(1)];
        let start = matrix.panel_ptr(self.panel0 + panel % self.panels, self.row0) as usize;
        // A call's lines may run past the end of one panel's block. They then
        // cover the data after it rather than the next panel's block: a few
        // useless prefetches, which never fault.
        Prefetch { ahead: 0, address: start + (line % self.lines_per_panel) * CACHE_LINE, lines: count }
    }
}

/// Runs [`micro`] for `mr` rows and `np` panels known only at run time.
///
/// # Safety
/// As [`micro`] with `MR = mr`, `NP = np`; also `1 <= mr <= MAX_MR`, `1 <= np <= MAX_NP`.
#[inline(always)]
pub(crate) unsafe fn micro_dispatch<S: Simd, const VPP: usize>(
    s: S,
    mr: usize,
    np: usize,
    x: *const f32,
    x_stride: usize,
    w: &[*const f32],
    kc: usize,
    acc: *mut f32,
    acc_stride: usize,
    accumulate: bool,
) {
    macro_rules! by_panels {
        ($mr:literal) => {
            match np {
                // SAFETY: the caller's contract with the sizes matched here.
                1 => unsafe {
                    micro::<S, $mr, 1, VPP>(s, x, x_stride, w, kc, acc, acc_stride, accumulate, Prefetch::default())
                },
                // SAFETY: as above.
                2 => unsafe {
                    micro::<S, $mr, 2, VPP>(s, x, x_stride, w, kc, acc, acc_stride, accumulate, Prefetch::default())
                },
                // SAFETY: as above.
                3 => unsafe {
                    micro::<S, $mr, 3, VPP>(s, x, x_stride, w, kc, acc, acc_stride, accumulate, Prefetch::default())
                },
                // SAFETY: as above.
                4 => unsafe {
                    micro::<S, $mr, 4, VPP>(s, x, x_stride, w, kc, acc, acc_stride, accumulate, Prefetch::default())
                },
                _ => unreachable!("{np} panels per microkernel call"),
            }
        };
    }
    match mr {
        1 => by_panels!(1),
        2 => by_panels!(2),
        3 => by_panels!(3),
        4 => by_panels!(4),
        5 => by_panels!(5),
        6 => by_panels!(6),
        7 => by_panels!(7),
        8 => by_panels!(8),
        _ => unreachable!("{mr} rows per microkernel call"),
    }
}

/// Returns pointers to rows `k0..k0 + kc` of panels `panel0..panel0 + np` of
/// `w` as f32: straight into f32 storage, or after widening into `buffer`
/// (`np·kc·NR` floats).
///
/// # Safety
/// The CPU must support `S`'s tier; the panels and rows must exist.
#[inline(always)]
unsafe fn panel_rows<S: Simd>(
    s: S,
    w: &PackedMatrix,
    panel0: usize,
    np: usize,
    k0: usize,
    kc: usize,
    buffer: *mut f32,
    out: &mut [*const f32; MAX_NP],
) {
    for p in 0..np {
        let source = w.panel_ptr(panel0 + p, k0);
        if w.format() == WeightFormat::F32 {
            out[p] = source.cast();
            continue;
        }
        // SAFETY: the buffer has room for np·kc·NR floats (caller's contract).
        let target = unsafe { buffer.add(p * kc * NR) };
        if w.format() == WeightFormat::F16 {
            let source = source.cast::<u16>();
            for offset in (0..kc * NR).step_by(S::LANES) {
                // SAFETY: rows k0..k0 + kc of the panel hold kc·NR halves,
                // and the buffer has room for them.
                unsafe { s.store(target.add(offset), s.load_f16(source.add(offset))) };
            }
        } else {
            // BF16: pair q holds rows 2q and 2q + 1 of every lane. The
            // padding row of an odd kc is not stored.
            let source = source.cast::<u32>();
            for q in 0..kc.div_ceil(2) {
                for v in (0..NR).step_by(S::LANES) {
                    // SAFETY: the panel holds ceil(kc / 2)·NR pairs from row k0.
                    let (first, second) = unsafe { s.load_bf16_pairs(source.add(q * NR + v)) };
                    // SAFETY: row 2q < kc lies inside the buffer's kc·NR floats.
                    unsafe { s.store(target.add(2 * q * NR + v), first) };
                    if 2 * q + 1 < kc {
                        // SAFETY: as above for row 2q + 1 < kc.
                        unsafe { s.store(target.add((2 * q + 1) * NR + v), second) };
                    }
                }
            }
        }
        out[p] = target;
    }
}

#[inline(always)]
fn activate<S: Simd>(s: S, activation: Activation, v: S::F) -> S::F {
    match activation {
        Activation::Identity => v,
        Activation::Gelu => simd::gelu(s, v),
        Activation::Silu => simd::silu(s, v),
    }
}

/// Loads `len <= LANES` floats, the whole vector when `len == LANES`.
///
/// # Safety
/// `ptr..ptr + len` must be readable.
#[inline(always)]
unsafe fn load_upto<S: Simd>(s: S, ptr: *const f32, len: usize) -> S::F {
    // SAFETY: the caller's contract.
    unsafe { if len == S::LANES { s.load(ptr) } else { s.load_partial(ptr, len) } }
}

/// Applies the epilogue to rows `row0..row0 + rows` and columns
/// `col0..col0 + cols` of the output, reading raw sums from `acc` (and for a
/// gated product the value sums from `value_acc`), row stride `acc_stride`.
///
/// # Safety
/// The CPU must support `S`'s tier, the block must lie inside the output and
/// belong to the calling tile, and the accumulators must hold the block.
#[inline(always)]
pub(crate) unsafe fn epilogue<S: Simd>(
    s: S,
    job: &MatmulJob<'_>,
    acc: *const f32,
    value_acc: *const f32,
    acc_stride: usize,
    row0: usize,
    rows: usize,
    col0: usize,
    cols: usize,
) {
    let n = job.n;
    for r in 0..rows {
        let row = row0 + r;
        // SAFETY: the block belongs to the calling tile (caller's contract).
        let out = unsafe { job.out.slice(row * n + col0, cols) };
        for c in (0..cols).step_by(S::LANES) {
            let len = S::LANES.min(cols - c);
            // SAFETY: the accumulators hold the block (caller's contract).
            let sum = unsafe { load_upto(s, acc.add(r * acc_stride + c), len) };
            let result = match job.product {
                Product::Linear { epilogue, .. } => {
                    let mut v = sum;
                    if let Some(bias) = epilogue.bias {
                        // SAFETY: `bias` has n ≥ col0 + c + len values (checked by the caller of the job).
                        v = s.add(v, unsafe { load_upto(s, bias.as_ptr().add(col0 + c), len) });
                    }
                    v = activate(s, epilogue.activation, v);
                    if let Some(residual) = epilogue.residual {
                        // SAFETY: `residual` is [rows, n] (checked by the caller of the job).
                        v = s.add(v, unsafe { load_upto(s, residual.as_ptr().add(row * n + col0 + c), len) });
                    }
                    v
                }
                Product::Gated { gate_bias, value_bias, activation, .. } => {
                    let mut g = sum;
                    // SAFETY: as `acc`.
                    let mut v = unsafe { load_upto(s, value_acc.add(r * acc_stride + c), len) };
                    if let Some(bias) = gate_bias {
                        // SAFETY: `bias` has n values (checked by the caller of the job).
                        g = s.add(g, unsafe { load_upto(s, bias.as_ptr().add(col0 + c), len) });
                    }
                    if let Some(bias) = value_bias {
                        // SAFETY: as above.
                        v = s.add(v, unsafe { load_upto(s, bias.as_ptr().add(col0 + c), len) });
                    }
                    s.mul(activate(s, activation, g), v)
                }
            };
            // SAFETY: `out` has `cols` values.
            unsafe {
                if len == S::LANES {
                    s.store(out.as_mut_ptr().add(c), result);
                } else {
                    s.store_partial(out.as_mut_ptr().add(c), len, result);
                }
            }
        }
    }
}

/// Computes one tile of a matmul job, epilogue included.
///
/// # Safety
/// The CPU must support `S`'s tier, `MR <= MAX_MR`, `NP <= MAX_NP`,
/// `VPP·S::LANES == NR`, and no other task may write the tile's part of the
/// output meanwhile.
#[inline(always)]
pub(crate) unsafe fn tile<S: Simd, const MR: usize, const NP: usize, const VPP: usize>(
    s: S,
    job: &MatmulJob<'_>,
    tile: Tile,
) {
    const { assert!(MR <= MAX_MR && NP <= MAX_NP && VPP * S::LANES == NR) };
    let k = job.k;
    let (first, second) = job.matrices();
    let matrices = if second.is_some() { 2 } else { 1 };
    let groups = tile.rows.div_ceil(MR);
    let acc_stride = tile.panels * NR;
    let acc_len = groups * MR * acc_stride;

    // Scratch: packed rows of X, widened weights, accumulators of each matrix.
    // X packed in row groups by the driver (group g at g·MR·k), or else by
    // this tile for one reduction block at a time (group g at g·MR·block_len).
    let shared_x = job.x_pack.map(|packed| {
        assert!(
            job.x_pack_rows == MR && tile.row0.is_multiple_of(MR),
            "X packed for {} rows per group",
            job.x_pack_rows
        );
        assert!(packed.len() >= (tile.row0 + groups * MR) * k, "packed X shorter than the tile's rows");
        packed[tile.row0 * k..].as_ptr()
    });
    let widened = first.format() != WeightFormat::F32;
    // Block boundaries do not change results: the accumulators are stored
    // and reloaded exactly.
    // Tiles over f32 weights loop over panel groups outermost (see
    // `F32_MC`); widened weights are converted one block at a time.
    let panels_outer = !widened;
    let block_len = if panels_outer { f32_block_len(k) } else { KC };
    let x_len = if shared_x.is_some() { 0 } else { groups * MR * block_len };
    let w_len = if widened { matrices * tile.panels * block_len * NR } else { 0 };
    let mut panel_pointers = vec![std::ptr::null::<f32>(); matrices * tile.panels];
    let sizes = [x_len, w_len, matrices * acc_len];
    let mut scratch = take_scratch(lines_len(&sizes));
    let [x_private, w_buffer, accumulators] = split_lines(&mut scratch, sizes);
    let (x_private, w_buffer, accumulators) =
        (x_private.as_mut_ptr(), w_buffer.as_mut_ptr(), accumulators.as_mut_ptr());

    // With k = 0 there is one empty block, so the epilogue still runs.
    let blocks = k.div_ceil(block_len).max(1);
    for block in 0..blocks {
        let k0 = block * block_len;
        let kc = block_len.min(k - k0);
        let last = block + 1 == blocks;

        if shared_x.is_none() {
            // Copy the tile's rows of X for this block, input-feature major per row group.
            // SAFETY: the scratch buffer starts with x_len = groups·MR·block_len floats.
            let x_block = unsafe { std::slice::from_raw_parts_mut(x_private, x_len) };
            for (g, out) in x_block.chunks_exact_mut(MR * block_len).enumerate() {
                let group_rows = MR.min(tile.rows - g * MR);
                let first_row = (tile.row0 + g * MR) * k;
                let source = &job.x[first_row..first_row + (group_rows - 1) * k + k0 + kc];
                super::copy_group::<MR>(source, k, group_rows, k0, kc, out);
            }
        }

        // Pointers to this block's rows of every panel of every matrix,
        // widened into the buffer first when stored in half precision.
        for (m, w) in [Some(first), second].into_iter().flatten().enumerate() {
            for panel in (0..tile.panels).step_by(NP) {
                let np = NP.min(tile.panels - panel);
                let mut chunk = [std::ptr::null(); MAX_NP];
                // SAFETY: panels panel0 + panel.. + np and rows k0..k0 + kc
                // exist, and the buffer has room for matrices·panels·block_len·NR floats.
                unsafe {
                    let buffer = w_buffer.add((m * tile.panels + panel) * block_len * NR);
                    panel_rows(s, w, tile.panel0 + panel, np, k0, kc, buffer, &mut chunk);
                }
                panel_pointers[m * tile.panels + panel..][..np].copy_from_slice(&chunk[..np]);
            }
        }

        let panel_groups = tile.panels.div_ceil(NP);
        let calls = panel_groups * groups * matrices;
        let block_prefetch =
            if panels_outer { None } else { L2Prefetch::plan(first, second, tile, k, k0, block_len, last, calls) };
        let mut group_prefetch = None;
        for step in 0..panel_groups * groups {
            let (g, panel) = if panels_outer {
                (step % groups, step / groups * NP)
            } else {
                (step / panel_groups, step % panel_groups * NP)
            };
            let np = NP.min(tile.panels - panel);
            if panels_outer && g == 0 && groups >= L2_PREFETCH_MIN_GROUPS {
                group_prefetch =
                    L2Prefetch::after_group(first, second, tile, panel, NP, k, k0, kc, block_len, groups * matrices);
            }
            let group_rows = MR.min(tile.rows - g * MR);
            for m in 0..matrices {
                let panels = &panel_pointers[m * tile.panels + panel..][..np];
                // SAFETY: row group g has kc·MR packed floats from the
                // block's start (k·MR per group when shared, block_len·MR
                // when private), and each panel has kc·NR floats. The
                // accumulator block of matrix m has room for group_rows
                // rows of np·NR floats.
                unsafe {
                    let acc = accumulators.add(m * acc_len + g * MR * acc_stride + panel * NR);
                    let x = match shared_x {
                        Some(packed) => packed.add(g * MR * k + k0 * MR),
                        None => x_private.add(g * MR * block_len),
                    };
                    if group_rows == MR && np == NP {
                        let prefetch = if !panels_outer {
                            let call = step * matrices + m;
                            block_prefetch.as_ref().map_or(Prefetch::default(), |plan| plan.range(call))
                        } else {
                            let call = g * matrices + m;
                            let l2 = group_prefetch.as_ref().map_or(Prefetch::default(), |plan| plan.range(call));
                            Prefetch { ahead: L1_AHEAD_ROWS * NR * size_of::<f32>(), ..l2 }
                        };
                        micro::<S, MR, NP, VPP>(s, x, MR, panels, kc, acc, acc_stride, block > 0, prefetch);
                    } else {
                        micro_dispatch::<S, VPP>(s, group_rows, np, x, MR, panels, kc, acc, acc_stride, block > 0);
                    }
                }
            }
            if last {
                let col0 = (tile.panel0 + panel) * NR;
                let cols = (np * NR).min(job.n - col0);
                // SAFETY: the block lies in this tile, whose output the
                // caller reserved, and the accumulators hold it.
                unsafe {
                    let acc = accumulators.add(g * MR * acc_stride + panel * NR);
                    let value_acc = if matrices == 2 { acc.add(acc_len) } else { acc };
                    epilogue(s, job, acc, value_acc, acc_stride, tile.row0 + g * MR, group_rows, col0, cols);
                }
            }
        }
    }
    return_scratch(scratch);
}
