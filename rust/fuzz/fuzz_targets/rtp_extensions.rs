//! RFC 8285 extension elements: the first two bytes are the profile, the
//! rest the block. Well-formed elements re-encode to the same elements.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtpcore_proto::rtp::{write_extension_elements, ExtensionBlock, ExtensionForm};

fuzz_target!(|input: &[u8]| {
    let Some((profile, data)) = input.split_first_chunk::<2>() else { return };
    let block = ExtensionBlock { profile: u16::from_be_bytes(*profile), data, data_offset: 0 };
    let Ok(elements) = block.elements().collect::<Result<Vec<_>, _>>() else { return };
    if let ExtensionForm::Other(_) = block.form() {
        assert!(elements.is_empty());
        return;
    }
    let mut encoded = Vec::new();
    write_extension_elements(&elements, block.form(), &mut encoded).expect("parsed elements fit their own form");
    let again = ExtensionBlock { profile: block.profile, data: &encoded, data_offset: 0 };
    let reparsed: Vec<_> = again.elements().collect::<Result<_, _>>().expect("encoded elements parse");
    assert_eq!(reparsed, elements);
});
