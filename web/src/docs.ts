// The API reference at /docs: Swagger UI (bundled by Vite, nothing from a CDN) rendering the
// gateway's own /openapi.json. It talks to this origin only: no validator badge, no remote
// configuration, and "Try it out" calls go to the gateway that served the page.
// @ts-expect-error: swagger-ui-dist ships no type declarations.
import { SwaggerUIBundle } from "swagger-ui-dist";
import "swagger-ui-dist/swagger-ui.css";

SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#docs",
  deepLinking: true,
  // The default sends the document to a public validator for a badge; keep it here.
  validatorUrl: null,
  // Read no config from the query string (?url= or ?configUrl= could point elsewhere).
  queryConfigEnabled: false,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  tryItOutEnabled: false,
  persistAuthorization: false,
});
