//! Helpers shared by the image store's tests.

use berth_image::ImageStore;

/// Layer `i` of `image` as the store gives it back (its length checked against the one
/// announced).
pub fn layer_bytes(store: &ImageStore, image: &str, i: usize) -> Vec<u8> {
    let (mut r, n) = store.layer_tar(image, i).unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut r, &mut out).unwrap();
    assert_eq!(out.len() as u64, n);
    out
}
