//! The web viewer's entry point (wasm32 only): the window's `MuxscopeApp`,
//! drawn on `<canvas id="muxscope_canvas">`, over a [`RemoteBackend`]
//! attached to the headless muxscope that served the page
//! (`ws://HOST/ws`, with the page's `?token=…` passed on).
//!
//! With `?e2e=1` in the page URL, the page also publishes where its widgets
//! are, as `window.muxscopeWidgets` (an array of `{text, role, x, y, w, h}`
//! in CSS pixels, from egui's accessibility tree), so a browser test can
//! find a button by its label and click it with real mouse events.

use crate::backend::{RemoteBackend, ws_url_for_page};
use crate::ui::MuxscopeApp;
use wasm_bindgen::{JsCast, JsValue};

pub const CANVAS_ID: &str = "muxscope_canvas";
const LOADING_ID: &str = "loading_text";

/// Start the viewer; returns at once, the app runs from the browser's
/// event loop.
pub fn start() {
    eframe::WebLogger::init(log::LevelFilter::Info).ok();
    wasm_bindgen_futures::spawn_local(async {
        if let Err(e) = run().await {
            log::error!("muxscope viewer failed to start: {e}");
            show_loading_note(&format!(
                "The viewer failed to start: {e}. See the browser console for details."
            ));
        }
    });
}

async fn run() -> Result<(), String> {
    let window = web_sys::window().ok_or("no window")?;
    let document = window.document().ok_or("no document")?;
    let location = window.location();
    let protocol = location.protocol().unwrap_or_default();
    let host = location.host().unwrap_or_default();
    let search = location.search().unwrap_or_default();
    let url = ws_url_for_page(&protocol, &host, &search);
    let e2e = search
        .trim_start_matches('?')
        .split('&')
        .any(|p| p == "e2e=1");
    let canvas = document
        .get_element_by_id(CANVAS_ID)
        .ok_or_else(|| format!("no element #{CANVAS_ID}"))?
        .dyn_into::<web_sys::HtmlCanvasElement>()
        .map_err(|_| format!("#{CANVAS_ID} is not a canvas"))?;

    eframe::WebRunner::new()
        .start(
            canvas,
            eframe::WebOptions::default(),
            Box::new(move |cc| {
                // egui's own fonts are the desktop's only (Cargo.toml).
                cc.egui_ctx.set_fonts(crate::web_fonts::definitions());
                if e2e {
                    cc.egui_ctx.enable_accesskit();
                    cc.egui_ctx.add_plugin(WidgetProbe);
                }
                let ctx = cc.egui_ctx.clone();
                let backend = RemoteBackend::connect(url, move || ctx.request_repaint());
                let _ = PICKER_CTX.with(|c| c.set(cc.egui_ctx.clone()));
                let files = crate::ui::app::AppFiles {
                    pick_recording: Some(pick_recording),
                    picked_recording: Some(take_picked),
                    read_dropped: Some(read_dropped),
                    ..Default::default()
                };
                Ok(Box::new(
                    MuxscopeApp::new(Box::new(backend), "")
                        .restore_from_storage(cc.storage)
                        .with_files(files),
                ))
            }),
        )
        .await
        .map_err(|e| format!("{e:?}"))?;
    if let Some(note) = document.get_element_by_id(LOADING_ID) {
        note.remove();
    }
    Ok(())
}

thread_local! {
    /// The file the picker read, until the app takes it.
    static PICKED: std::cell::RefCell<Option<(String, Vec<u8>)>> = const { std::cell::RefCell::new(None) };
    /// To wake the app once the file is read.
    static PICKER_CTX: std::cell::OnceCell<egui::Context> = const { std::cell::OnceCell::new() };
}

/// Open the browser's file picker for a `.muxrec`; the file is read
/// asynchronously and handed to the app by [`take_picked`].
fn pick_recording() {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let Ok(input) = document
        .create_element("input")
        .map(|e| e.unchecked_into::<web_sys::HtmlInputElement>())
    else {
        return;
    };
    input.set_type("file");
    input.set_accept(".muxrec");
    let chosen = input.clone();
    let on_change = wasm_bindgen::closure::Closure::once_into_js(move || {
        let Some(file) = chosen.files().and_then(|f| f.get(0)) else {
            return;
        };
        let name = file.name();
        wasm_bindgen_futures::spawn_local(async move {
            match wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await {
                Ok(buffer) => hand_over(name, js_sys::Uint8Array::new(&buffer).to_vec()),
                Err(e) => log::error!("reading {name} failed: {e:?}"),
            }
        });
    });
    input.set_onchange(Some(on_change.unchecked_ref()));
    input.click();
}

/// Read a recording dropped on the page, then hand it over as the picker
/// does.
fn read_dropped(file: egui::DroppedFileHandle) {
    wasm_bindgen_futures::spawn_local(async move {
        let name = file.path().display().to_string();
        match file.bytes_async().await {
            Ok(bytes) => hand_over(name, bytes),
            Err(e) => log::error!("reading {name} failed: {e}"),
        }
    });
}

fn hand_over(name: String, bytes: Vec<u8>) {
    PICKED.with(|p| *p.borrow_mut() = Some((name, bytes)));
    PICKER_CTX.with(|c| {
        if let Some(ctx) = c.get() {
            ctx.request_repaint();
        }
    });
}

fn take_picked() -> Option<(String, Vec<u8>)> {
    PICKED.with(|p| p.borrow_mut().take())
}

fn show_loading_note(text: &str) {
    let note = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(LOADING_ID));
    if let Some(note) = note {
        note.set_text_content(Some(text));
    }
}

/// Publishes each frame's widgets (from the accessibility tree) to
/// `window.muxscopeWidgets`, for browser tests.
struct WidgetProbe;

impl egui::Plugin for WidgetProbe {
    fn debug_name(&self) -> &'static str {
        "muxscope-widget-probe"
    }

    fn output_hook(&mut self, _ctx: &egui::Context, output: &mut egui::FullOutput) {
        let Some(update) = &output.platform_output.accesskit_update else {
            return;
        };
        let list = js_sys::Array::new();
        for (_, node) in &update.nodes {
            let (Some(bounds), Some(text)) = (node.bounds(), node.label().or(node.value())) else {
                continue;
            };
            let item = js_sys::Object::new();
            let set = |key: &str, value: JsValue| {
                let _ = js_sys::Reflect::set(&item, &JsValue::from_str(key), &value);
            };
            set("text", JsValue::from_str(text));
            set("role", JsValue::from_str(&format!("{:?}", node.role())));
            set("x", JsValue::from_f64(bounds.x0));
            set("y", JsValue::from_f64(bounds.y0));
            set("w", JsValue::from_f64(bounds.x1 - bounds.x0));
            set("h", JsValue::from_f64(bounds.y1 - bounds.y0));
            list.push(&item);
        }
        if let Some(window) = web_sys::window() {
            let _ = js_sys::Reflect::set(&window, &JsValue::from_str("muxscopeWidgets"), &list);
        }
    }
}
