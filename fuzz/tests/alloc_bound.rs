//! The allocation bound catches what it is for: an allocation sized by a
//! length field, far over the bound, fails; a decoder's ordinary working
//! set passes.

use optimizer_fuzz::alloc_bound::{self, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

fn measure(input: &[u8], f: impl FnOnce(&[u8])) -> alloc_bound::Usage {
    let base = alloc_bound::live();
    alloc_bound::begin(input);
    f(input);
    alloc_bound::end(base)
}

#[test]
fn an_allocation_sized_by_the_input_fails_and_a_small_one_passes() {
    let input = [0xff_u8, 0xff, 0xff, 0x00];
    let huge = measure(&input, |b| {
        let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let v: Vec<u8> = Vec::with_capacity(n);
        std::hint::black_box(&v);
    });
    assert!(huge.largest >= 0x00ff_ffff, "{huge:?}");
    assert!(!huge.within(input.len()), "{huge:?}");
    let small = measure(&input, |b| {
        let v = b.repeat(16);
        std::hint::black_box(&v);
    });
    assert!(small.within(input.len()), "{small:?}");
    // Live growth counts too: many small allocations kept at once.
    let many = measure(&input, |_| {
        let v: Vec<Vec<u8>> = (0..4096).map(|_| vec![0u8; 1024]).collect();
        std::hint::black_box(&v);
    });
    assert!(many.largest < alloc_bound::bound(input.len()), "{many:?}");
    assert!(!many.within(input.len()), "{many:?}");
}
