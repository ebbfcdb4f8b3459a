//! Images in the local store: load, unpack, export, and read them.
//!
//! Role: the worker's image half — everything between image formats (`strata-oci`) and the
//! store (`strata-cache`):
//!
//! - [`load`]: `docker load` — OCI archives, `docker save` archives and OCI layout
//!   directories into the content store, verified, then tagged;
//! - [`unpack`]: a stored image → a chain of committed snapshots (the base of a `FROM`),
//!   reusing layers already unpacked;
//! - [`export`]: a snapshot chain and the lowered image config → layers, config, manifest,
//!   tags (the result of a build);
//! - [`save`]: `docker save` — stored images as docker or OCI archive tars, layers
//!   compressed on the way out when asked;
//! - [`details`]: reading a stored image (manifest chosen by platform, config, layers);
//! - [`rootfs_export`]: the final filesystem as files or one tar (`--output type=local|tar`);
//! - [`names`]: Docker's name normalisation and lookups by name or id;
//! - [`pull`] / [`push`]: images from and to registries (`strata-oci`'s registry client),
//!   blobs streamed between the network and the content store; [`blob_sources`]
//!   remembers which repositories hold a blob, for cross-repository mounts;
//! - [`config`]: the lowering's `Image` ↔ the OCI image config;
//! - [`store_blobs`]: the content store as `strata-oci`'s blob source and sink;
//! - [`layer_record`]: which layer blob holds which snapshot's diff.
//!
//! Key decision: a snapshot and a layer blob are two forms of the same layer, and each
//! conversion is done once: unpacking records the blob a snapshot came from, exporting
//! records the blob a snapshot became, and both directions are looked up before any tar is
//! read or written. Layers in the local store are uncompressed tars; compression happens
//! when an image leaves the machine.

pub mod blob_sources;
pub mod config;
pub mod details;
pub mod export;
pub mod layer_record;
pub mod load;
pub mod names;
pub mod pull;
pub mod push;
pub mod rootfs_export;
pub mod save;
pub mod store_blobs;
pub mod unpack;

pub use config::{from_oci_config, to_oci_config};
pub use details::{host_platform, read_image, target_descriptor, ReadError, StoredImage};
pub use export::{export_image, ExportError, ExportOptions, ExportedImage};
pub use load::{load_archive, load_layout, LoadError, LoadedImage};
pub use names::{familiar_name, find_image, normalize_name, normalize_tag, NameError};
pub use pull::{pull_and_unpack, pull_image, PullError, PulledImage};
pub use push::{push_image, PushError, PushOptions, PushedImage};
pub use rootfs_export::{
    export_rootfs_dir, export_rootfs_tar, RootfsExportError, RootfsExportStats,
};
pub use save::{
    save_images, save_images_seekable, save_images_to_file, ArchiveFormat, CompressionOptionError,
    LayerCompression, SaveError, SaveImage, SaveOptions,
};
pub use store_blobs::{StoreBlobError, StoreBlobs};
pub use unpack::{unpack_image, unpack_manifest, UnpackError, UnpackedImage};
