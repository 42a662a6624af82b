// Swagger UI over PMAP's own OpenAPI document (loaded from this server: /docs works with no internet).
"use strict";
window.SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // a bearer token typed into "Authorize" is kept only in this page's memory
  persistAuthorization: false,
  tryItOutEnabled: false,
  validatorUrl: null,  // never ask validator.swagger.io (a third party) about this document
});
