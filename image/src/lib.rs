//! hearth-image: builds signed, read-only A/B disk images and OTA bundles per board from
//! Debian packages, `board-configs/` and `overlays/`. Nothing here is written yet: the
//! image-builder issue fills it in.
