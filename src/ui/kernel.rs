//! The kernel's view of a connection (`TCP_INFO`): the inspector's section
//! with sparklines, and the text of the table's optional columns.

use crate::format;
use crate::monitor::TcpHistory;
use crate::protocol::TcpInfo;
use egui::{Color32, RichText, Sense, Stroke, Ui, pos2, vec2};

/// The section's title; tests look for it.
pub const TITLE: &str = "Kernel (TCP_INFO)";

/// An RTT and its variance, e.g. `1.2 ms ± 300 µs`.
pub fn rtt(t: &TcpInfo) -> String {
    format!(
        "{} ± {}",
        format::duration_micros(u64::from(t.rtt_us)),
        format::duration_micros(u64::from(t.rttvar_us))
    )
}

/// A window, or why there is none: a kernel before 5.4 does not say.
pub fn window(w: Option<u32>) -> String {
    match w {
        Some(w) => format::bytes(u64::from(w)),
        None => "not reported by this kernel".to_owned(),
    }
}

/// The inspector's section. `unavailable` is the engine's reason, if its
/// platform has no `TCP_INFO`; `latest` the connection's last sample.
pub fn section(
    ui: &mut Ui,
    unavailable: Option<&str>,
    latest: Option<&TcpInfo>,
    history: Option<&TcpHistory>,
    closed: bool,
) {
    // Closed at first, with the two numbers that most often explain a
    // stuck client in its title: open, it would push the transcript (the
    // inspector's main content) down by a dozen rows.
    let title = match (unavailable, latest) {
        (None, Some(t)) => format!(
            "{TITLE}: RTT {} · peer window {}",
            format::duration_micros(u64::from(t.rtt_us)),
            t.peer_window
                .map_or("?".to_owned(), |w| format::bytes(u64::from(w)))
        ),
        _ => TITLE.to_owned(),
    };
    egui::CollapsingHeader::new(title)
        .id_salt("inspector-kernel")
        .default_open(false)
        .show(ui, |ui| {
            if let Some(why) = unavailable {
                ui.label(RichText::new(why).weak());
                return;
            }
            let Some(t) = latest else {
                let why = if closed {
                    "not sampled before it closed"
                } else {
                    "sampling…"
                };
                ui.label(RichText::new(why).weak());
                return;
            };
            grid(ui, t, history);
        });
}

fn grid(ui: &mut Ui, t: &TcpInfo, history: Option<&TcpHistory>) {
    let samples = history.map(|h| h.samples());
    let series = |f: fn(&TcpInfo) -> Option<f32>| -> Vec<f32> {
        samples
            .map(|s| s.iter().filter_map(f).collect())
            .unwrap_or_default()
    };
    let rtts = series(|s| Some(s.rtt_us as f32));
    let windows = series(|s| s.peer_window.map(|w| w as f32));
    let row = |ui: &mut Ui, name: &str, value: String, hint: &str| {
        ui.label(name).on_hover_text(hint);
        ui.label(value).on_hover_text(hint);
        ui.end_row();
    };
    egui::Grid::new("inspector-kernel")
        .num_columns(3)
        .spacing([12.0, 2.0])
        .show(ui, |ui| {
            ui.label("RTT").on_hover_text(
                "Smoothed round-trip time ± its variance, as the kernel measures it",
            );
            ui.label(rtt(t));
            sparkline(
                ui,
                &rtts,
                super::rx_color(ui),
                "RTT over the recent samples",
            );
            ui.end_row();
            let closed = t.peer_window == Some(0);
            ui.label("peer window").on_hover_text(
                "How much more the client will take (the window it advertises). \
                 0: the client is not reading",
            );
            let text = RichText::new(window(t.peer_window));
            ui.label(if closed {
                text.color(super::warn_color(ui))
            } else {
                text
            });
            sparkline(
                ui,
                &windows,
                super::tx_color(ui),
                "Peer window over the recent samples",
            );
            ui.end_row();
            row(
                ui,
                "our window",
                window(t.rcv_window),
                "The window muxscope's side advertises to the client",
            );
            row(
                ui,
                "retransmits",
                format!("{} total · {} lost now", t.total_retrans, t.lost),
                "Segments retransmitted over the connection's life, and presumed lost now",
            );
            row(
                ui,
                "cwnd",
                format!(
                    "{} segments of {}",
                    t.cwnd,
                    format::bytes(u64::from(t.snd_mss))
                ),
                "Congestion window and the send MSS",
            );
            row(
                ui,
                "unacked",
                format!("{} segments", t.unacked),
                "Segments sent and not yet acknowledged by the client",
            );
            row(
                ui,
                "unsent",
                format::bytes(u64::from(t.notsent_bytes)),
                "Bytes written to the socket that TCP has not sent yet",
            );
            row(
                ui,
                "last sent / received",
                format!(
                    "{} ago / {} ago",
                    format::duration_micros(u64::from(t.last_data_sent_ms) * 1000),
                    format::duration_micros(u64::from(t.last_data_recv_ms) * 1000)
                ),
                "Since the kernel last sent and received data on it",
            );
            row(
                ui,
                "delivery rate",
                format!("{}/s", format::bytes(t.delivery_rate)),
                "Recent delivery rate as the kernel estimates it",
            );
            row(
                ui,
                "segments",
                format!("{} out · {} in", t.segs_out, t.segs_in),
                "Segments sent and received",
            );
        });
}

/// A small line of `values` (oldest first), scaled to their own range.
fn sparkline(ui: &mut Ui, values: &[f32], color: Color32, hint: &str) {
    let (rect, response) = ui.allocate_exact_size(vec2(120.0, 18.0), Sense::hover());
    if values.len() >= 2 {
        let (lo, hi) = values
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        let span = (hi - lo).max(f32::EPSILON);
        let step = rect.width() / (values.len() - 1) as f32;
        let points = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let y = rect.bottom() - (v - lo) / span * rect.height();
                pos2(rect.left() + i as f32 * step, y)
            })
            .collect();
        ui.painter().line(points, Stroke::new(1.0, color));
    }
    response.on_hover_text(format!("{hint} ({} samples)", values.len()));
}
