//! One integration binary; a module per area.

mod js_client;
