"""Small custom widgets: an image view, a Q-over-time plot, the topic health list.

Drawn with QPainter so the window needs no plotting library and every repaint is cheap
(a 64x64 frame scaled up, a polyline of a few hundred points).
"""

from __future__ import annotations

from collections import deque

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, QSize, Qt
from PyQt6.QtGui import QColor, QFont, QImage, QPainter, QPainterPath, QPen, QPixmap
from PyQt6.QtWidgets import QLabel, QSizePolicy, QWidget

from gui.ros_bridge import TopicHealth


def to_qimage(image: np.ndarray) -> QImage:
    """An RGB uint8 array as a QImage that owns its pixels (the array may be reused)."""
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    return QImage(image.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def to_pixmap(image: np.ndarray, side: int) -> QPixmap:
    """A square thumbnail; nearest-neighbour so a 64x64 frame stays crisp, not blurred."""
    return QPixmap.fromImage(to_qimage(image)).scaled(
        side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
    )


class ImageView(QWidget):
    """Shows an image scaled to fit, or a centred message when there is none."""

    def __init__(self, title: str, placeholder: str, parent=None):
        super().__init__(parent)
        self.title = title
        self.message = placeholder
        self.caption = ""
        self.image: np.ndarray | None = None
        self._qimage: QImage | None = None
        self.setMinimumSize(200, 220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_image(self, image: np.ndarray, caption: str = "") -> None:
        self.image, self._qimage, self.caption, self.message = image, to_qimage(image), caption, ""
        self.update()

    def set_message(self, message: str) -> None:
        """Replace the picture by a message (no camera, no goal chosen)."""
        self.image, self._qimage, self.message = None, None, message
        self.update()

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(30, 32, 36))
        title_h = 22
        painter.setPen(QColor(220, 220, 220))
        bold = QFont(self.font())
        bold.setBold(True)
        painter.setFont(bold)
        painter.drawText(QRectF(6, 2, self.width() - 12, title_h), Qt.AlignmentFlag.AlignVCenter, self.title)
        painter.setFont(self.font())
        caption_h = 20 if self.caption else 0
        area = QRectF(4, title_h, self.width() - 8, self.height() - title_h - caption_h - 4)
        if self._qimage is not None:
            scale = min(area.width() / self._qimage.width(), area.height() / self._qimage.height())
            w, h = self._qimage.width() * scale, self._qimage.height() * scale
            target = QRectF(area.center().x() - w / 2, area.center().y() - h / 2, w, h)
            painter.drawImage(target, self._qimage)
            if self.caption:
                painter.setPen(QColor(170, 170, 170))
                rect = QRectF(6, self.height() - caption_h - 2, self.width() - 12, caption_h)
                painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, self.caption)
        else:
            painter.setPen(QColor(240, 180, 90))
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.message)
        painter.end()


class QPlot(QWidget):
    """Q-value over the last steps, on a fixed 0..1 axis (Q is a probability)."""

    def __init__(self, capacity: int = 300, parent=None):
        super().__init__(parent)
        self.values: deque[float] = deque(maxlen=capacity)
        self.setMinimumSize(QSize(220, 110))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def add(self, q: float) -> None:
        self.values.append(min(1.0, max(0.0, float(q))))
        self.update()

    def clear(self) -> None:
        self.values.clear()
        self.update()

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor(250, 250, 250))
        left, top, right, bottom = 30.0, 8.0, self.width() - 8.0, self.height() - 18.0
        painter.setPen(QPen(QColor(200, 200, 200), 1))
        for level in (0.0, 0.5, 1.0):
            y = bottom - level * (bottom - top)
            painter.drawLine(QPointF(left, y), QPointF(right, y))
            painter.setPen(QColor(90, 90, 90))
            painter.drawText(QRectF(0, y - 8, left - 4, 16), Qt.AlignmentFlag.AlignRight, f"{level:g}")
            painter.setPen(QPen(QColor(200, 200, 200), 1))
        painter.setPen(QColor(90, 90, 90))
        label = f"Q over the last {len(self.values)} steps" if self.values else "Q: no values yet"
        painter.drawText(QRectF(left, bottom + 2, right - left, 16), Qt.AlignmentFlag.AlignCenter, label)
        if len(self.values) >= 2:
            n = self.values.maxlen
            dx = (right - left) / (n - 1)
            x0 = right - (len(self.values) - 1) * dx
            path = QPainterPath(QPointF(x0, bottom - self.values[0] * (bottom - top)))
            for i, q in enumerate(self.values):
                path.lineTo(QPointF(x0 + i * dx, bottom - q * (bottom - top)))
            painter.setPen(QPen(QColor(30, 110, 200), 2))
            painter.drawPath(path)
        painter.end()


def describe(h: TopicHealth) -> tuple[str, bool]:
    """One line for a topic or service, and whether it is healthy."""
    if h.is_service:
        return (f"{h.name}: ready", True) if h.publishers else (f"{h.name}: not available", False)
    if h.publishers == 0 and (h.age_s is None or h.age_s > 2.0):
        return f"{h.name}: no publisher", False
    if h.age_s is None:
        return f"{h.name}: {h.publishers} publisher(s), no message yet", h.alive
    return f"{h.name}: {h.rate_hz:.1f} Hz, last {h.age_s:.1f} s ago", h.alive


class HealthPanel(QLabel):
    """Which topics and services are alive, with the age of their last message."""

    ORDER = ("camera", "status", "commands", "start", "stop", "reset", "record")  # record: the recorder node

    def __init__(self, parent=None):
        super().__init__("waiting for the ROS graph ...", parent)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setWordWrap(True)
        self.lines: dict[str, tuple[str, bool]] = {}

    def set_health(self, health: dict[str, TopicHealth]) -> None:
        self.lines = {role: describe(health[role]) for role in self.ORDER if role in health}
        rows = []
        for role, (text, ok) in self.lines.items():
            colour = "#1a7f37" if ok else "#b35900"
            mark = "&#9679;"
            rows.append(f"<span style='color:{colour}'>{mark}</span> <b>{role}</b> {text}")
        self.setText("<br>".join(rows))
