//! The labels Docker Compose puts on what it creates, so `docker compose -p <app>` (and the older
//! `docker-compose`) see Hearth's apps as their own projects, plus Hearth's own marker.

pub const PROJECT: &str = "com.docker.compose.project";
pub const SERVICE: &str = "com.docker.compose.service";
pub const CONTAINER_NUMBER: &str = "com.docker.compose.container-number";
pub const ONEOFF: &str = "com.docker.compose.oneoff";
pub const VERSION: &str = "com.docker.compose.version";
pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
pub const NETWORK: &str = "com.docker.compose.network";
pub const VOLUME: &str = "com.docker.compose.volume";
pub const IMAGE: &str = "com.docker.compose.image";

/// Set on everything Hearth creates; the value is the app id.
pub const HEARTH_APP: &str = "io.hearth.app";

/// The Compose version Hearth's labels imitate.
pub const COMPOSE_VERSION: &str = "2.29.0";
