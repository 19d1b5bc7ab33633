// Swagger UI for /docs (serving/routes_apidocs.py). A file, not the usual inline script: the
// Content-Security-Policy allows scripts from this server only.
"use strict";
(function () {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // The default validator badge asks validator.swagger.io: never leave this server.
    validatorUrl: null,
    // "Try it out" is authenticated by the session cookie of /login (same origin).
    requestInterceptor: function (request) {
      request.credentials = "same-origin";
      return request;
    },
  });
})();
