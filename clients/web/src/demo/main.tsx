import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import "../react/hub.css";
import "./styles.css";
import { App } from "./App";
import { KioskApp } from "./kiosk/KioskApp";

// /kiosk is the lobby device's screen; everything else is the staff app.
const kiosk = location.pathname.replace(/\/+$/, "") === "/kiosk";

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    {kiosk ? <KioskApp /> : <App />}
  </StrictMode>,
);
