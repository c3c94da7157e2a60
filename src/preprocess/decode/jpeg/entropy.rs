//! Huffman entropy decoding of sequential and progressive scans, following libjpeg's
//! `jdhuff.c` and `jdphuff.c`. Entropy decoding is lossless, so any correct decoder yields the
//! same coefficients. The libjpeg structure is kept so that edge cases (EOB runs, correction
//! bits, restart markers) read the same way.

use super::JpegError;

/// Zigzag position -> natural (row-major) position of a coefficient in an 8x8 block.
pub(super) const NATURAL_ORDER: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
    28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
    47, 55, 62, 63,
];

/// Codes of up to this many bits are decoded with one table lookup.
const LOOKAHEAD_BITS: u32 = 9;

/// A Huffman table from a DHT segment.
#[derive(Clone)]
pub(super) struct HuffmanTable {
    /// For each `LOOKAHEAD_BITS`-bit prefix: code length (0 if longer) and symbol.
    lookup: Vec<(u8, u8)>,
    /// Largest code of each length 1..=16, or -1 when there is none.
    max_code: [i32; 17],
    /// Index into `symbols` of the first code of each length, minus that code.
    offset: [i32; 17],
    symbols: Vec<u8>,
}

impl HuffmanTable {
    /// Builds the canonical code from the 16 code-length counts and the symbols.
    pub(super) fn new(counts: &[u8; 16], symbols: &[u8]) -> Result<Self, JpegError> {
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        if total != symbols.len() || total > 256 {
            return Err(JpegError::corrupt("Huffman table counts do not match its symbols"));
        }
        let mut lookup = vec![(0_u8, 0_u8); 1 << LOOKAHEAD_BITS];
        let mut max_code = [-1_i32; 17];
        let mut offset = [0_i32; 17];
        let mut code: i32 = 0;
        let mut index: i32 = 0;
        for length in 1..=16_u32 {
            let count = i32::from(counts[length as usize - 1]);
            offset[length as usize] = index - code;
            for _ in 0..count {
                if code >= (1 << length) {
                    return Err(JpegError::corrupt("Huffman table has too many codes"));
                }
                if length <= LOOKAHEAD_BITS {
                    let shift = LOOKAHEAD_BITS - length;
                    let first = (code as usize) << shift;
                    for entry in &mut lookup[first..first + (1 << shift)] {
                        *entry = (length as u8, symbols[index as usize]);
                    }
                }
                code += 1;
                index += 1;
            }
            if count > 0 {
                max_code[length as usize] = code - 1;
            }
            code <<= 1;
        }
        Ok(Self { lookup, max_code, offset, symbols: symbols.to_vec() })
    }
}

/// Reads the bits of entropy-coded data: removes stuffed zero bytes after 0xFF, stops at a
/// marker and supplies zero bits past it, as libjpeg's `jpeg_fill_bit_buffer` does.
pub(super) struct BitReader<'a> {
    data: &'a [u8],
    /// Next unread byte. At a marker, the position of its 0xFF.
    pub(super) position: usize,
    buffer: u64,
    bits: u32,
    /// Whether a marker (or the end of the data) stopped the reading.
    at_marker: bool,
}

impl<'a> BitReader<'a> {
    pub(super) fn new(data: &'a [u8], position: usize) -> Self {
        Self { data, position, buffer: 0, bits: 0, at_marker: false }
    }

    fn fill(&mut self) {
        while self.bits <= 56 {
            let byte = if self.at_marker {
                0
            } else {
                match self.data.get(self.position) {
                    None => {
                        self.at_marker = true;
                        0
                    }
                    Some(&0xFF) => {
                        // Skip fill bytes (0xFF 0xFF ...); 0xFF 0x00 is a data byte 0xFF.
                        let mut next = self.position + 1;
                        while self.data.get(next) == Some(&0xFF) {
                            next += 1;
                        }
                        match self.data.get(next) {
                            Some(0) => {
                                self.position = next + 1;
                                0xFF
                            }
                            _ => {
                                self.position = next - 1;
                                self.at_marker = true;
                                0
                            }
                        }
                    }
                    Some(&byte) => {
                        self.position += 1;
                        byte
                    }
                }
            };
            self.buffer |= u64::from(byte) << (56 - self.bits);
            self.bits += 8;
        }
    }

    fn bits(&mut self, count: u32) -> u32 {
        if count == 0 {
            return 0;
        }
        if self.bits < count {
            self.fill();
        }
        let value = (self.buffer >> (64 - count)) as u32;
        self.buffer <<= count;
        self.bits -= count;
        value
    }

    fn bit(&mut self) -> bool {
        self.bits(1) == 1
    }

    /// Reads `count` bits as a signed coefficient value (JPEG's `EXTEND`).
    fn receive_extend(&mut self, count: u32) -> i32 {
        if count == 0 {
            return 0;
        }
        let value = self.bits(count) as i32;
        if value < (1 << (count - 1)) { value - (1 << count) + 1 } else { value }
    }

    fn decode(&mut self, table: &HuffmanTable) -> Result<u8, JpegError> {
        if self.bits < 16 {
            self.fill();
        }
        let peek = (self.buffer >> (64 - LOOKAHEAD_BITS)) as usize;
        let (length, symbol) = table.lookup[peek];
        if length > 0 {
            self.buffer <<= length;
            self.bits -= u32::from(length);
            return Ok(symbol);
        }
        let mut code: i32 = 0;
        for length in 1..=16 {
            code = (code << 1) | self.bits(1) as i32;
            if code <= table.max_code[length] {
                let index = (table.offset[length] + code) as usize;
                return table.symbols.get(index).copied().ok_or_else(|| JpegError::corrupt("bad Huffman code"));
            }
        }
        Err(JpegError::corrupt("bad Huffman code"))
    }

    /// Discards buffered bits and consumes the expected restart marker `RST{number}`.
    pub(super) fn restart(&mut self, number: u8) -> Result<(), JpegError> {
        self.buffer = 0;
        self.bits = 0;
        self.at_marker = false;
        let marker = super::next_marker(self.data, &mut self.position)?;
        if marker != 0xD0 + number {
            return Err(JpegError::corrupt(format!(
                "expected restart marker RST{number}, found marker 0x{marker:02X}"
            )));
        }
        Ok(())
    }
}

/// The parameters of one scan of a progressive or sequential JPEG.
pub(super) struct ScanParams {
    pub spectral_start: usize,
    pub spectral_end: usize,
    pub approx_high: u32,
    pub approx_low: u32,
    pub progressive: bool,
}

/// Decoding state of one scan: DC predictions and the end-of-band run.
pub(super) struct ScanState<'t> {
    pub params: ScanParams,
    /// DC prediction per component of the scan.
    pub dc_pred: Vec<i32>,
    pub eob_run: u32,
    pub dc_tables: Vec<Option<&'t HuffmanTable>>,
    pub ac_tables: Vec<Option<&'t HuffmanTable>>,
}

impl ScanState<'_> {
    pub(super) fn reset(&mut self) {
        self.dc_pred.iter_mut().for_each(|p| *p = 0);
        self.eob_run = 0;
    }

    /// Decodes the data of one block of scan component `k` into `block` (natural order).
    pub(super) fn decode_block(
        &mut self,
        reader: &mut BitReader,
        k: usize,
        block: &mut [i16; 64],
    ) -> Result<(), JpegError> {
        let p = &self.params;
        if !p.progressive {
            self.decode_sequential(reader, k, block)
        } else if p.spectral_start == 0 {
            if p.approx_high == 0 {
                let table = table(self.dc_tables[k], "DC")?;
                let size = u32::from(reader.decode(table)?);
                if size > 16 {
                    return Err(JpegError::corrupt("DC difference longer than 16 bits"));
                }
                let diff = reader.receive_extend(size);
                self.dc_pred[k] = self.dc_pred[k].wrapping_add(diff);
                block[0] = (self.dc_pred[k] << p.approx_low) as i16;
            } else if reader.bit() {
                block[0] |= (1_i32 << p.approx_low) as i16;
            }
            Ok(())
        } else if p.approx_high == 0 {
            self.decode_ac_first(reader, k, block)
        } else {
            self.decode_ac_refine(reader, k, block)
        }
    }

    fn decode_sequential(&mut self, reader: &mut BitReader, k: usize, block: &mut [i16; 64]) -> Result<(), JpegError> {
        let dc = table(self.dc_tables[k], "DC")?;
        let ac = table(self.ac_tables[k], "AC")?;
        let size = u32::from(reader.decode(dc)?);
        if size > 16 {
            return Err(JpegError::corrupt("DC difference longer than 16 bits"));
        }
        let diff = reader.receive_extend(size);
        self.dc_pred[k] = self.dc_pred[k].wrapping_add(diff);
        block[0] = self.dc_pred[k] as i16;
        let mut index = 1;
        while index < 64 {
            let symbol = reader.decode(ac)?;
            let (run, size) = (usize::from(symbol >> 4), u32::from(symbol & 15));
            if size == 0 {
                if run != 15 {
                    break;
                }
                index += 16;
                continue;
            }
            index += run;
            let Some(&position) = NATURAL_ORDER.get(index) else {
                return Err(JpegError::corrupt("AC coefficient index past 63"));
            };
            block[position] = reader.receive_extend(size) as i16;
            index += 1;
        }
        Ok(())
    }

    fn decode_ac_first(&mut self, reader: &mut BitReader, k: usize, block: &mut [i16; 64]) -> Result<(), JpegError> {
        if self.eob_run > 0 {
            self.eob_run -= 1;
            return Ok(());
        }
        let ac = table(self.ac_tables[k], "AC")?;
        let (end, low) = (self.params.spectral_end, self.params.approx_low);
        let mut index = self.params.spectral_start;
        while index <= end {
            let symbol = reader.decode(ac)?;
            let (run, size) = (u32::from(symbol >> 4), u32::from(symbol & 15));
            if size != 0 {
                index += run as usize;
                let Some(&position) = NATURAL_ORDER.get(index) else {
                    return Err(JpegError::corrupt("AC coefficient index past 63"));
                };
                block[position] = (reader.receive_extend(size) << low) as i16;
            } else if run == 15 {
                index += 15;
            } else {
                self.eob_run = (1 << run) + reader.bits(run) - 1;
                break;
            }
            index += 1;
        }
        Ok(())
    }

    fn decode_ac_refine(&mut self, reader: &mut BitReader, k: usize, block: &mut [i16; 64]) -> Result<(), JpegError> {
        let ac = table(self.ac_tables[k], "AC")?;
        let end = self.params.spectral_end;
        let positive = 1_i32 << self.params.approx_low;
        let negative = -1_i32 << self.params.approx_low;
        let mut index = self.params.spectral_start;

        // Appends a correction bit to an already-nonzero coefficient.
        let refine = |reader: &mut BitReader, coefficient: &mut i16| {
            if reader.bit() && (i32::from(*coefficient) & positive) == 0 {
                let step = if *coefficient >= 0 { positive } else { negative };
                *coefficient = (i32::from(*coefficient) + step) as i16;
            }
        };

        if self.eob_run == 0 {
            while index <= end {
                let symbol = reader.decode(ac)?;
                let (mut run, size) = (i32::from(symbol >> 4), symbol & 15);
                let mut value = 0;
                if size != 0 {
                    // The size of a newly nonzero coefficient is always 1; libjpeg warns
                    // about other sizes and reads one bit anyway.
                    value = if reader.bit() { positive } else { negative };
                } else if run != 15 {
                    self.eob_run = (1 << run) + reader.bits(run as u32);
                    break;
                }
                // Skip already-nonzero coefficients (refining them) and `run` zero ones.
                while index <= end {
                    let coefficient = &mut block[NATURAL_ORDER[index]];
                    if *coefficient != 0 {
                        refine(reader, coefficient);
                    } else {
                        run -= 1;
                        if run < 0 {
                            break;
                        }
                    }
                    index += 1;
                }
                if value != 0 {
                    let Some(&position) = NATURAL_ORDER.get(index) else {
                        return Err(JpegError::corrupt("AC coefficient index past 63"));
                    };
                    block[position] = value as i16;
                }
                index += 1;
            }
        }
        if self.eob_run > 0 {
            // Refine the nonzero coefficients left in the band of a block in an EOB run.
            while index <= end {
                let coefficient = &mut block[NATURAL_ORDER[index]];
                if *coefficient != 0 {
                    refine(reader, coefficient);
                }
                index += 1;
            }
            self.eob_run -= 1;
        }
        Ok(())
    }
}

fn table<'t>(table: Option<&'t HuffmanTable>, kind: &str) -> Result<&'t HuffmanTable, JpegError> {
    table.ok_or_else(|| JpegError::corrupt(format!("scan uses an undefined {kind} Huffman table")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huffman_table_decodes_canonical_codes() {
        // Lengths: one 1-bit code, two 3-bit codes, one 10-bit code (past the lookup table).
        let mut counts = [0_u8; 16];
        counts[0] = 1;
        counts[2] = 2;
        counts[9] = 1;
        let table = HuffmanTable::new(&counts, &[7, 8, 9, 10]).unwrap();
        // Codes: 0 -> 7, 100 -> 8, 101 -> 9, 1100000000 -> 10; then 1-bit padding.
        let data = [0b0100_1011, 0b1000_0000, 0b0011_1111];
        let mut reader = BitReader::new(&data, 0);
        for expected in [7, 8, 9, 10] {
            assert_eq!(reader.decode(&table).unwrap(), expected);
        }
    }

    #[test]
    fn huffman_table_rejects_too_many_codes() {
        let mut counts = [0_u8; 16];
        counts[0] = 3;
        assert!(HuffmanTable::new(&counts, &[1, 2, 3]).is_err());
        let mut counts = [0_u8; 16];
        counts[1] = 5;
        assert!(HuffmanTable::new(&counts, &[1, 2, 3, 4, 5]).is_err());
    }

    #[test]
    fn bit_reader_unstuffs_and_stops_at_marker() {
        // 0xFF 0x00 is a data byte 0xFF; 0xFF 0xD9 is a marker, after which zeros follow.
        let data = [0xFF, 0x00, 0xA5, 0xFF, 0xD9];
        let mut reader = BitReader::new(&data, 0);
        assert_eq!(reader.bits(8), 0xFF);
        assert_eq!(reader.bits(8), 0xA5);
        assert_eq!(reader.bits(16), 0);
        assert_eq!(reader.position, 3);
    }

    #[test]
    fn receive_extend_signs_values() {
        // A 3-bit value below 4 is negative: 0b011 -> -4, 0b100 -> 4.
        let data = [0b0111_0000];
        let mut reader = BitReader::new(&data, 0);
        assert_eq!(reader.receive_extend(3), -4);
        assert_eq!(reader.receive_extend(3), 4);
    }
}
