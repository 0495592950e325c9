//! The arrangement of panes (egui_tiles): split, tab, resize, and saved with
//! the session layout.

use super::PaneCtx;
use super::connections::ConnectionsPane;
use super::diagnostics::{DiagnosticsAction, DiagnosticsPane};
use super::events::EventsPane;
use super::faults::FaultsPane;
use super::inject::InjectPane;
use super::inspector::InspectorPane;
use super::plot::PlotPane;
use super::scenario::{ScenarioAction, ScenarioPane};
use egui_tiles::{SimplificationOptions, TileId, Tiles, Tree, UiResponse};
use serde::{Deserialize, Serialize};

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PaneKind {
    Connections,
    Inspector,
    Events,
    Inject,
    Plot,
    Faults,
    Scenario,
    Diagnostics,
}

impl PaneKind {
    pub const ALL: [PaneKind; 8] = [
        PaneKind::Connections,
        PaneKind::Inspector,
        PaneKind::Events,
        PaneKind::Inject,
        PaneKind::Plot,
        PaneKind::Faults,
        PaneKind::Scenario,
        PaneKind::Diagnostics,
    ];

    pub fn title(self) -> &'static str {
        match self {
            PaneKind::Connections => "Connections",
            PaneKind::Inspector => "Inspector",
            PaneKind::Events => "Events",
            PaneKind::Inject => "Inject",
            PaneKind::Plot => "Throughput",
            PaneKind::Faults => "Faults",
            PaneKind::Scenario => "Scenario",
            PaneKind::Diagnostics => "Diagnostics",
        }
    }
}

/// Connections over events on the left; inspector over inject/plot tabs on
/// the right.
pub fn default_tree() -> Tree<PaneKind> {
    let mut tiles = Tiles::default();
    let conns = tiles.insert_pane(PaneKind::Connections);
    let events = tiles.insert_pane(PaneKind::Events);
    let diagnostics = tiles.insert_pane(PaneKind::Diagnostics);
    let inspector = tiles.insert_pane(PaneKind::Inspector);
    let inject = tiles.insert_pane(PaneKind::Inject);
    let plot = tiles.insert_pane(PaneKind::Plot);
    let faults = tiles.insert_pane(PaneKind::Faults);
    let scenario = tiles.insert_pane(PaneKind::Scenario);
    let bottom_left = tiles.insert_tab_tile(vec![events, diagnostics]);
    let left = tiles.insert_vertical_tile(vec![conns, bottom_left]);
    let bottom_right = tiles.insert_tab_tile(vec![inject, plot, faults, scenario]);
    let right = tiles.insert_vertical_tile(vec![inspector, bottom_right]);
    let root = tiles.insert_horizontal_tile(vec![left, right]);
    if let Some(egui_tiles::Tile::Container(egui_tiles::Container::Linear(linear))) =
        tiles.get_mut(root)
    {
        // Wide enough for every column of the table at 1280 px.
        linear.shares.set_share(left, 1.8);
        linear.shares.set_share(right, 1.0);
    }
    if let Some(egui_tiles::Tile::Container(egui_tiles::Container::Linear(linear))) =
        tiles.get_mut(right)
    {
        // The inspector's transcript is what people read most.
        linear.shares.set_share(inspector, 1.7);
        linear.shares.set_share(bottom_right, 1.0);
    }
    Tree::new(egui::Id::unique("muxscope-panes"), root, tiles)
}

/// Every pane's state, drawn by kind.
#[derive(Debug, Default)]
pub struct Panes {
    pub connections: ConnectionsPane,
    pub inspector: InspectorPane,
    pub events: EventsPane,
    pub inject: InjectPane,
    pub plot: PlotPane,
    pub faults: FaultsPane,
    pub scenario: ScenarioPane,
    /// What the Scenario pane asked of the app this frame.
    pub scenario_action: Option<ScenarioAction>,
    pub diagnostics: DiagnosticsPane,
}

pub struct Behavior<'a, 'b> {
    pub panes: &'a mut Panes,
    pub ctx: PaneCtx<'b>,
}

impl egui_tiles::Behavior<PaneKind> for Behavior<'_, '_> {
    fn tab_title_for_pane(&mut self, pane: &PaneKind) -> egui::WidgetText {
        pane.title().into()
    }

    fn pane_ui(&mut self, ui: &mut egui::Ui, _tile_id: TileId, pane: &mut PaneKind) -> UiResponse {
        let steers = matches!(
            pane,
            PaneKind::Inject | PaneKind::Faults | PaneKind::Scenario
        );
        if steers && self.ctx.playback {
            // Shown as it is, but inert: a recording has no engine to steer.
            ui.label(
                egui::RichText::new("A recording is played back: nothing here reaches a server.")
                    .color(super::warn_color(ui)),
            );
            ui.disable();
        }
        egui::Frame::new()
            .inner_margin(4.0)
            .show(ui, |ui| match pane {
                PaneKind::Connections => self.panes.connections.ui(ui, &mut self.ctx),
                PaneKind::Inspector => self.panes.inspector.ui(ui, &mut self.ctx),
                PaneKind::Events => self.panes.events.ui(ui, &mut self.ctx),
                PaneKind::Inject => self.panes.inject.ui(ui, &mut self.ctx),
                PaneKind::Plot => self.panes.plot.ui(ui, &mut self.ctx),
                PaneKind::Faults => self.panes.faults.ui(ui, &mut self.ctx),
                PaneKind::Scenario => {
                    if let Some(action) = self.panes.scenario.ui(ui, &mut self.ctx) {
                        self.panes.scenario_action = Some(action);
                    }
                }
                PaneKind::Diagnostics => {
                    if let Some(DiagnosticsAction::FilterTable(lint)) =
                        self.panes.diagnostics.ui(ui, &mut self.ctx)
                    {
                        self.panes.connections.lint_filter = lint;
                    }
                }
            });
        UiResponse::None
    }

    /// As wide as the splitter's grab zone, so the zone lies in the gap and
    /// never over the tab strip next to it (with egui_tiles' 1 px gap it
    /// reached 5 px into the tabs, and a tab drag became a resize).
    fn gap_width(&self, style: &egui::Style) -> f32 {
        2.0 * style.interaction.resize_grab_radius_side
    }

    /// A thin line in the middle of the wider gap while idle.
    fn resize_stroke(&self, style: &egui::Style, state: egui_tiles::ResizeState) -> egui::Stroke {
        match state {
            egui_tiles::ResizeState::Idle => {
                egui::Stroke::new(1.0, style.visuals.widgets.noninteractive.bg_stroke.color)
            }
            egui_tiles::ResizeState::Hovering => style.visuals.widgets.hovered.fg_stroke,
            egui_tiles::ResizeState::Dragging => style.visuals.widgets.active.fg_stroke,
        }
    }

    /// Taller tabs are an easier target to grab and to drop on.
    fn tab_bar_height(&self, _style: &egui::Style) -> f32 {
        28.0
    }

    fn simplification_options(&self) -> SimplificationOptions {
        // Tabs on every pane give each a title and a handle to drag it by.
        SimplificationOptions {
            all_panes_must_have_tabs: true,
            ..SimplificationOptions::default()
        }
    }
}

/// Bring `kind` into view: make its tab active, or add it to the root if a
/// layout (from before the pane existed, or edited) has none.
pub fn show_pane(tree: &mut Tree<PaneKind>, kind: PaneKind) {
    let tile = match tree.tiles.find_pane(&kind) {
        Some(tile) => tile,
        None => {
            let tile = tree.tiles.insert_pane(kind);
            match tree.root.and_then(|r| tree.tiles.get_mut(r)) {
                Some(egui_tiles::Tile::Container(c)) => c.add_child(tile),
                _ => tree.root = Some(tile),
            }
            tile
        }
    };
    tree.make_active(|id, _| id == tile);
}
